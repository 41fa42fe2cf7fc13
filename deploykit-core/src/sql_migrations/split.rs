//! Splitting a migration file into statements, the way the Supabase CLI does.
//!
//! The Supabase CLI stores each applied file in
//! `supabase_migrations.schema_migrations.statements` as the list of its
//! statements: the text split at every `;` outside a string, comment or
//! dollar-quoted body, each piece with trailing `;` removed and whitespace
//! trimmed, empty pieces dropped, comments kept. Splitting the same way lets
//! deploykit write history rows the CLI reads as its own, and report which
//! statement of a file failed.

/// One statement of a file, with where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    /// The statement as the Supabase CLI would store it (trimmed, no trailing `;`).
    pub(crate) sql: String,
    /// 1-based line of the file where the statement's text starts.
    pub(crate) line: usize,
}

impl Statement {
    /// True when the statement holds only comments (nothing for a server to run).
    pub(crate) fn is_comment_only(&self) -> bool {
        strip_comments(&self.sql).trim().is_empty()
    }
}

/// Splits `sql` into statements (see the module docs for the rules).
pub(crate) fn split_statements(sql: &str) -> Vec<Statement> {
    let mut out = Vec::new();
    let bytes = sql.as_bytes();
    let mut start = 0;
    let mut i = 0;
    let push = |out: &mut Vec<Statement>, from: usize, to: usize| {
        let raw = &sql[from..to];
        let trimmed = raw.trim_end_matches(';').trim();
        if !trimmed.is_empty() {
            let lead = raw.len() - raw.trim_start().len();
            let line = 1 + sql[..from + lead].matches('\n').count();
            out.push(Statement {
                sql: trimmed.to_string(),
                line,
            });
        }
    };
    while i < bytes.len() {
        match bytes[i] {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..]
                    .find('\n')
                    .map(|n| i + n + 1)
                    .unwrap_or(bytes.len());
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let mut depth = 1;
                i += 2;
                while i < bytes.len() && depth > 0 {
                    if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
            }
            b'\'' => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == b'\'' {
                        if bytes.get(i + 1) == Some(&b'\'') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'\\' => i += 2,
            b'$' => match dollar_tag(&sql[i..]) {
                Some(tag) => {
                    let body = i + tag.len();
                    i = sql[body..]
                        .find(tag)
                        .map(|n| body + n + tag.len())
                        .unwrap_or(bytes.len());
                }
                None => i += 1,
            },
            b';' => {
                push(&mut out, start, i + 1);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < bytes.len() {
        push(&mut out, start, bytes.len());
    }
    out
}

/// `$tag$` or `$$` at the start of `s`, if it opens a dollar-quoted string.
fn dollar_tag(s: &str) -> Option<&str> {
    let rest = &s[1..];
    let end = rest.find('$')?;
    let tag = &rest[..end];
    let ok = tag.is_empty()
        || (tag
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
            && tag.chars().all(|c| c.is_alphanumeric() || c == '_'));
    ok.then(|| &s[..end + 2])
}

/// `sql` with `--` and `/* */` comments replaced by spaces, strings kept; what
/// the lint looks at so commented-out SQL is not flagged.
pub(crate) fn strip_comments(sql: &str) -> String {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'-' && bytes.get(i + 1) == Some(&b'-') {
            let end = sql[i..].find('\n').map(|n| i + n).unwrap_or(bytes.len());
            out.push(' ');
            i = end;
        } else if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
            let end = sql[i + 2..]
                .find("*/")
                .map(|n| i + 2 + n + 2)
                .unwrap_or(bytes.len());
            out.push(' ');
            i = end;
        } else if bytes[i] == b'\'' {
            let mut j = i + 1;
            while j < bytes.len() {
                if bytes[j] == b'\'' {
                    if bytes.get(j + 1) == Some(&b'\'') {
                        j += 2;
                        continue;
                    }
                    break;
                }
                j += 1;
            }
            let end = (j + 1).min(bytes.len());
            out.push_str(&sql[i..end]);
            i = end;
        } else {
            let ch = sql[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqls(s: &str) -> Vec<String> {
        split_statements(s).into_iter().map(|s| s.sql).collect()
    }

    #[test]
    fn splits_like_the_supabase_cli() {
        let file = "-- users\ncreate table users (id int);\n\ninsert into users values (1);  \n";
        assert_eq!(
            sqls(file),
            [
                "-- users\ncreate table users (id int)",
                "insert into users values (1)"
            ]
        );
        let st = split_statements(file);
        assert_eq!((st[0].line, st[1].line), (1, 4));
    }

    #[test]
    fn semicolons_inside_strings_comments_and_bodies_do_not_split() {
        let file = "insert into t values ('a;b', 'it''s;');\n\
            /* c; /* nested; */ still */ select 1;\n\
            create function f() returns int as $body$ select 1; $body$ language sql;\n\
            do $$ begin perform 1; end $$;\n\
            select $1;\n\
            -- trailing; comment";
        assert_eq!(
            sqls(file),
            [
                "insert into t values ('a;b', 'it''s;')",
                "/* c; /* nested; */ still */ select 1",
                "create function f() returns int as $body$ select 1; $body$ language sql",
                "do $$ begin perform 1; end $$",
                "select $1",
                "-- trailing; comment",
            ]
        );
        assert!(split_statements(file)[5].is_comment_only());
        assert!(!split_statements(file)[4].is_comment_only());
    }

    #[test]
    fn comments_are_stripped_but_strings_kept() {
        assert_eq!(
            strip_comments("drop table x; -- drop table y\nselect '--no' /* drop */"),
            "drop table x;  \nselect '--no'  "
        );
    }
}
