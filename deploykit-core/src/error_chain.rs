//! An error and its sources on one line.
//!
//! Library errors wrap their causes, and the top-level message is often the least
//! useful part: openssh says "failed to connect to the remote host", reqwest says
//! "error sending request", while the reason a human can act on (`ssh`'s own text,
//! an untrusted TLS certificate) is a source further down.

/// `error` and each of its sources, joined by `: `; empty texts and texts already
/// said by an earlier part are left out.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.trim().is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);

    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn sources_follow_the_message_without_repeats_or_blanks() {
        let e = E(
            "error sending request",
            Some(Box::new(E(
                " ",
                Some(Box::new(E(
                    "invalid peer certificate: UnknownIssuer",
                    Some(Box::new(E("UnknownIssuer", None))),
                ))),
            ))),
        );
        assert_eq!(
            error_chain(&e),
            "error sending request: invalid peer certificate: UnknownIssuer"
        );
        assert_eq!(error_chain(&E("alone", None)), "alone");
    }
}
