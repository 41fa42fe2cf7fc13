//! `${VAR}` interpolation from the environment and `.env` files, with the forms
//! shells and Compose give it (`${VAR:-default}`, `${VAR:?message}`, …), so a
//! value written for a compose file means the same in deploykit.toml.

use std::collections::BTreeMap;

/// A `${…}` that could not be filled: the variable is unset (or empty where the
/// form requires a value), or the expression is not one deploykit reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfilled {
    /// The variable's name (or the whole expression, when it does not parse).
    pub name: String,
    /// The `${VAR:?message}` message, or why the expression does not parse.
    pub message: Option<String>,
}

impl std::fmt::Display for Unfilled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.message {
            Some(m) => write!(f, "${{{}}}: {m}", self.name),
            None => write!(f, "${{{}}}, which is not set", self.name),
        }
    }
}

/// Replaces every `${…}` in `text` from `vars`. `$$` is a literal `$`, and a `$`
/// not followed by `{` stays as written (passwords hold them).
///
/// The forms, as in POSIX shells and Compose:
/// - `${VAR}`: the value; unset is an error.
/// - `${VAR:-word}` / `${VAR-word}`: `word` when unset or empty / when unset.
/// - `${VAR:?msg}` / `${VAR?msg}`: an error saying `msg` when unset or empty / unset.
/// - `${VAR:+word}` / `${VAR+word}`: `word` when set and non-empty / set, else "".
///
/// `word` may itself hold `${…}`. Every unfilled expression is returned, so all
/// of them can be reported at once.
pub fn interpolate(text: &str, vars: &BTreeMap<String, String>) -> Result<String, Vec<Unfilled>> {
    let mut out = String::with_capacity(text.len());
    let mut unfilled = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body_on) = after.strip_prefix('{') {
            match closing_brace(body_on) {
                Some(end) => {
                    match expand(&body_on[..end], vars) {
                        Ok(v) => out.push_str(&v),
                        Err(mut u) => unfilled.append(&mut u),
                    }
                    rest = &body_on[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    if unfilled.is_empty() {
        Ok(out)
    } else {
        Err(unfilled)
    }
}

/// The names of the variables `text` uses, in order, including those only named
/// in a default (`${A:-${B}}` uses `A` and `B`).
pub fn variable_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        let body_on = &rest[i + 2..];
        let Some(end) = closing_brace(body_on) else {
            break;
        };
        let body = &body_on[..end];
        let (name, op) = split_name(body);
        names.push(name.to_string());
        if let Some((_, word)) = op {
            names.extend(variable_names(word));
        }
        rest = &body_on[end + 1..];
    }
    names
}

/// The index of the `}` that closes a `${`, counting nested `${…}`s in a default.
fn closing_brace(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Splits `VAR:-word` into the name and, when there is one, the operator and word.
fn split_name(body: &str) -> (&str, Option<(&str, &str)>) {
    let end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let (name, tail) = body.split_at(end);
    if tail.is_empty() {
        return (name, None);
    }
    for op in [":-", ":?", ":+", "-", "?", "+"] {
        if let Some(word) = tail.strip_prefix(op) {
            return (name, Some((op, word)));
        }
    }
    (name, Some(("", tail)))
}

fn expand(body: &str, vars: &BTreeMap<String, String>) -> Result<String, Vec<Unfilled>> {
    let (name, op) = split_name(body);
    let invalid = || {
        vec![Unfilled {
            name: body.to_string(),
            message: Some(
                "not a form deploykit reads (use ${VAR}, ${VAR:-default} or ${VAR:?message})"
                    .into(),
            ),
        }]
    };
    if name.is_empty() {
        return Err(invalid());
    }
    let value = vars.get(name);
    let set_nonempty = value.is_some_and(|v| !v.is_empty());
    match op {
        None => value.cloned().ok_or_else(|| {
            vec![Unfilled {
                name: name.to_string(),
                message: None,
            }]
        }),
        Some((":-", word)) if !set_nonempty => interpolate(word, vars),
        Some(("-", word)) if value.is_none() => interpolate(word, vars),
        Some((":-" | "-", _)) => Ok(value.cloned().unwrap_or_default()),
        Some((":?", msg)) if !set_nonempty => Err(required(name, msg, vars)),
        Some(("?", msg)) if value.is_none() => Err(required(name, msg, vars)),
        Some((":?" | "?", _)) => Ok(value.cloned().unwrap_or_default()),
        Some((":+", word)) if set_nonempty => interpolate(word, vars),
        Some(("+", word)) if value.is_some() => interpolate(word, vars),
        Some((":+" | "+", _)) => Ok(String::new()),
        Some(_) => Err(invalid()),
    }
}

fn required(name: &str, msg: &str, vars: &BTreeMap<String, String>) -> Vec<Unfilled> {
    let message = match interpolate(msg, vars) {
        Ok(m) if !m.trim().is_empty() => m,
        _ => "required, and not set".to_string(),
    };
    vec![Unfilled {
        name: name.to_string(),
        message: Some(message),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("A".to_string(), "1".to_string()),
            ("EMPTY".to_string(), String::new()),
        ])
    }

    fn names(u: Vec<Unfilled>) -> Vec<String> {
        u.into_iter().map(|u| u.name).collect()
    }

    #[test]
    fn replaces_known_and_reports_every_missing_variable() {
        let vars = vars();
        assert_eq!(interpolate("x${A}y$$z$w", &vars).unwrap(), "x1y$z$w");
        assert_eq!(
            names(interpolate("${B}-${A}-${C}", &vars).unwrap_err()),
            vec!["B", "C"]
        );
    }

    #[test]
    fn defaults_follow_the_shell_forms() {
        let vars = vars();
        let f = |t: &str| interpolate(t, &vars).unwrap();
        assert_eq!(f("${PORT:-3000}"), "3000");
        assert_eq!(f("${A:-3000}"), "1");
        assert_eq!(f("${EMPTY:-d}"), "d");
        assert_eq!(f("${EMPTY-d}"), "");
        assert_eq!(f("${UNSET-d}"), "d");
        assert_eq!(
            f("${A:+on}|${EMPTY:+on}|${EMPTY+on}|${UNSET+on}"),
            "on||on|"
        );
        assert_eq!(f("${UNSET:-${A}0}"), "10");
        assert_eq!(f("${UNSET:-}"), "");
        assert_eq!(f("${UNSET:-a}b}"), "ab}");
    }

    #[test]
    fn required_forms_carry_their_message() {
        let vars = vars();
        let err = interpolate("${DB:?set DB to the primary's URL}", &vars).unwrap_err();
        assert_eq!(
            err,
            vec![Unfilled {
                name: "DB".into(),
                message: Some("set DB to the primary's URL".into())
            }]
        );
        assert_eq!(err[0].to_string(), "${DB}: set DB to the primary's URL");
        assert!(interpolate("${EMPTY:?no}", &vars).is_err());
        assert_eq!(interpolate("${EMPTY?no}", &vars).unwrap(), "");
        assert_eq!(interpolate("${A:?no}", &vars).unwrap(), "1");
        assert!(interpolate("${UNSET?}", &vars).unwrap_err()[0]
            .to_string()
            .contains("required"));
    }

    #[test]
    fn a_default_is_only_checked_when_used() {
        let vars = vars();
        assert_eq!(interpolate("${A:-${UNSET}}", &vars).unwrap(), "1");
        assert_eq!(
            names(interpolate("${X:-${UNSET}}", &vars).unwrap_err()),
            vec!["UNSET"]
        );
    }

    #[test]
    fn an_unknown_form_is_reported_not_taken_for_a_name() {
        let err = interpolate("${PORT:3000}", &vars()).unwrap_err();
        assert_eq!(err[0].name, "PORT:3000");
        assert!(err[0]
            .message
            .as_deref()
            .unwrap()
            .contains("${VAR:-default}"));
    }

    #[test]
    fn variable_names_include_the_ones_in_defaults() {
        assert_eq!(
            variable_names("${A:-${B}} and ${C:?m} $$ ${D}"),
            vec!["A", "B", "C", "D"]
        );
    }
}
