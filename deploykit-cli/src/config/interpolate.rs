//! `${VAR}` interpolation from the environment and `.env` files.

use std::collections::BTreeMap;

/// Replaces every `${NAME}` in `text` with its value from `vars`. `$$` is a literal
/// `$`. Returns the names that have no value, so all of them can be reported at once.
pub fn interpolate(text: &str, vars: &BTreeMap<String, String>) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            match body.find('}') {
                Some(end) => {
                    let name = &body[..end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => missing.push(name.to_string()),
                    }
                    rest = &body[end + 1..];
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
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_known_and_reports_every_missing_variable() {
        let vars = BTreeMap::from([("A".to_string(), "1".to_string())]);
        assert_eq!(interpolate("x${A}y$$z$w", &vars).unwrap(), "x1y$z$w");
        assert_eq!(
            interpolate("${B}-${A}-${C}", &vars).unwrap_err(),
            vec!["B", "C"]
        );
    }
}
