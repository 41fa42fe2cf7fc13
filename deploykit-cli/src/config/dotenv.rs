//! `.env` files read the way Docker Compose reads them.
//!
//! Teams keep one `.env` for `docker-compose` and deploykit. A stricter reader
//! (dotenvy) refuses lines Compose accepts, such as `WEB_PORTS=19212 19213`, so the
//! same file would mean one thing to the stack and fail in the deploy tool. The
//! rules, from Compose's documentation:
//! - blank lines and lines starting with `#` are ignored; `export ` may prefix a line;
//! - an unquoted value runs to the end of the line, trimmed, and ` #` starts a comment;
//! - `'single'` quotes keep the text as written;
//! - `"double"` quotes take `\n`, `\t`, `\\`, `\"` and `\$` escapes;
//! - both quoted forms may span lines;
//! - unquoted and double-quoted values fill `${VAR}` (with the shell forms of
//!   [`super::interpolate()`]) from the lines above and the environment; an unset
//!   plain `${VAR}` becomes "" as in Compose.

use std::collections::BTreeMap;
use std::path::Path;

use super::interpolate::interpolate;

/// A line of a `.env` file that Compose would refuse too.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {why}")]
pub struct DotenvError {
    path: String,
    line: usize,
    why: String,
}

/// Reads `path`'s variables in file order. `environment` fills `${VAR}`s that the
/// file itself does not set.
pub fn read(
    path: &Path,
    environment: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, DotenvError> {
    let text = std::fs::read_to_string(path).map_err(|e| DotenvError {
        path: path.display().to_string(),
        line: 0,
        why: format!("cannot read: {e}"),
    })?;
    parse(&text, environment).map_err(|(line, why)| DotenvError {
        path: path.display().to_string(),
        line,
        why,
    })
}

/// Parses `.env` text; an error carries its 1-based line number.
pub fn parse(
    text: &str,
    environment: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut seen = environment.clone();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let number = i + 1;
        let line = lines[i].trim_start();
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, raw)) = line.split_once('=') else {
            // `KEY` alone passes the environment's value through: nothing to add.
            continue;
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            return Err((number, format!("`{key}` is not a variable name")));
        }
        let raw = raw.trim_start();
        let value = match raw.chars().next() {
            Some(q @ ('\'' | '"')) => {
                let mut body = raw[1..].to_string();
                while closing_quote(&body, q).is_none() && i < lines.len() {
                    body.push('\n');
                    body.push_str(lines[i]);
                    i += 1;
                }
                let end = closing_quote(&body, q)
                    .ok_or_else(|| (number, format!("the {q} quote is never closed")))?;
                let inner = &body[..end];
                if q == '\'' {
                    inner.to_string()
                } else {
                    fill(&unescape(inner), &seen).map_err(|why| (number, why))?
                }
            }
            _ => {
                let bare = match raw.find(" #").or_else(|| raw.find("\t#")) {
                    Some(c) => &raw[..c],
                    None => raw,
                };
                fill(bare.trim_end(), &seen).map_err(|why| (number, why))?
            }
        };
        seen.insert(key.to_string(), value.clone());
        out.retain(|(k, _)| k != key);
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// The index of the quote that closes a value opened with `q` (a `\"` escape does
/// not close a double-quoted one).
fn closing_quote(body: &str, q: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            '\\' if q == '"' && !escaped => escaped = true,
            c if c == q && !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            // `\$` stays a literal dollar through interpolation.
            Some('$') => out.push_str("$$"),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Fills `${…}`; a plain unset variable is "" (Compose's rule), a `${VAR:?msg}`
/// an error.
fn fill(value: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    match interpolate(value, vars) {
        Ok(v) => Ok(v),
        Err(unfilled) => {
            if let Some(u) = unfilled.iter().find(|u| u.message.is_some()) {
                return Err(u.to_string());
            }
            let mut blanks = vars.clone();
            for u in unfilled {
                blanks.insert(u.name, String::new());
            }
            interpolate(value, &blanks).map_err(|u| u[0].to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Vec<(String, String)> {
        let env = BTreeMap::from([("HOME_DIR".to_string(), "/home/app".to_string())]);
        parse(text, &env).unwrap()
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn unquoted_values_with_spaces_are_read_as_compose_reads_them() {
        assert_eq!(
            parsed("# ports\nWEB_PORTS=19212 19213\n\nA = b  # note\nC=x#y\n"),
            pairs(&[("WEB_PORTS", "19212 19213"), ("A", "b"), ("C", "x#y")])
        );
    }

    #[test]
    fn quotes_escapes_and_export() {
        assert_eq!(
            parsed("export S='a $B \\n'\nD=\"line\\n\\\"q\\\" \\$x\"\nM=\"one\ntwo\"\nE=\n"),
            pairs(&[
                ("S", "a $B \\n"),
                ("D", "line\n\"q\" $x"),
                ("M", "one\ntwo"),
                ("E", "")
            ])
        );
    }

    #[test]
    fn values_fill_from_lines_above_and_the_environment() {
        assert_eq!(
            parsed(
                "P=5432\nURL=postgres://h:${P}/db\nLOG=${HOME_DIR}/log\nX=${NOPE}\nY=${NOPE:-d}\n"
            ),
            pairs(&[
                ("P", "5432"),
                ("URL", "postgres://h:5432/db"),
                ("LOG", "/home/app/log"),
                ("X", ""),
                ("Y", "d")
            ])
        );
    }

    #[test]
    fn errors_name_the_line() {
        let env = BTreeMap::new();
        assert_eq!(parse("A=1\nB=\"open\n", &env).unwrap_err().0, 2);
        assert_eq!(parse("A=1\n\nBAD KEY=1\n", &env).unwrap_err().0, 3);
        let (line, why) = parse("R=${NEED:?set NEED}\n", &env).unwrap_err();
        assert_eq!(line, 1);
        assert!(why.contains("set NEED"), "{why}");
    }

    #[test]
    fn a_later_line_replaces_an_earlier_one() {
        assert_eq!(parsed("A=1\nA=2\n"), pairs(&[("A", "2")]));
    }
}
