//! The destructive-change lint: pure text analysis of a migration, no database.
//!
//! Flags statements that lose data or lock tables for long (`DROP TABLE`,
//! `DROP COLUMN`, `DROP SCHEMA`, `TRUNCATE`, `RENAME`, `ALTER COLUMN … TYPE`,
//! `SET NOT NULL`, `DELETE`/`UPDATE` without `WHERE`, `CREATE INDEX` without
//! `CONCURRENTLY`). Protected environments refuse flagged migrations unless the
//! file says, in a comment, that the change is intended:
//!
//! ```sql
//! -- deploykit:allow drop-column, rename
//! alter table users drop column legacy_id;
//! ```
//!
//! (`-- deploykit:allow all` allows every rule.) Comments and string literals are
//! not linted, so commented-out SQL and data mentioning `drop table` pass.

use std::collections::BTreeSet;

use crate::migrate::LintFinding;

use super::split::{split_statements, strip_comments};

/// The marker a file carries to allow its findings.
pub const ALLOW_MARKER: &str = "deploykit:allow";

/// Every rule the lint knows, by name.
pub const RULES: &[&str] = &[
    "drop-table",
    "drop-column",
    "drop-schema",
    "truncate",
    "rename",
    "alter-column-type",
    "set-not-null",
    "delete-without-where",
    "update-without-where",
    "create-index-without-concurrently",
];

/// What the lint found in one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LintReport {
    /// Risky statements, in file order.
    pub(crate) findings: Vec<LintFinding>,
    /// The file carries allow markers covering every finding.
    pub(crate) allowed: bool,
}

/// Lints one migration file's SQL.
pub(crate) fn lint(sql: &str) -> LintReport {
    let statements = split_statements(sql);
    let created_tables: BTreeSet<String> = statements
        .iter()
        .filter_map(|s| created_table(&words(&s.sql)))
        .collect();
    let mut findings = Vec::new();
    for st in &statements {
        let w = words(&st.sql);
        // Report the line where the SQL itself starts, after any leading comments.
        let code = strip_comments(&st.sql);
        let lead = code.len() - code.trim_start().len();
        let line = st.line + code[..lead].matches('\n').count();
        for (rule, what) in rules_hit(&w, &created_tables) {
            findings.push(LintFinding {
                rule: rule.to_string(),
                message: format!("line {line}: {what}"),
            });
        }
    }
    let allows = allowed_rules(sql);
    let allowed = !allows.is_empty()
        && findings
            .iter()
            .all(|f| allows.contains("all") || allows.contains(f.rule.as_str()));
    LintReport { findings, allowed }
}

/// Rules named by `-- deploykit:allow a, b` markers anywhere in the file.
pub(crate) fn allowed_rules(sql: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in sql.lines() {
        let Some(comment) = line.trim_start().strip_prefix("--") else {
            continue;
        };
        let Some(rest) = comment.trim().strip_prefix(ALLOW_MARKER) else {
            continue;
        };
        for rule in rest.split(|c: char| c == ',' || c.is_whitespace()) {
            let rule = rule.trim().to_ascii_lowercase();
            if !rule.is_empty() {
                out.insert(rule);
            }
        }
    }
    out
}

/// Upper-cased words of a statement; string literals become `'`, quoted
/// identifiers their (upper-cased) content, punctuation dropped.
fn words(sql: &str) -> Vec<String> {
    let text = strip_comments(sql);
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            while let Some(n) = chars.next() {
                if n == '\'' {
                    if chars.peek() == Some(&'\'') {
                        chars.next();
                        continue;
                    }
                    break;
                }
            }
            out.push("'".to_string());
        } else if c == '"' {
            let mut ident = String::new();
            for n in chars.by_ref() {
                if n == '"' {
                    break;
                }
                ident.push(n);
            }
            out.push(ident.to_uppercase());
        } else if c.is_alphanumeric() || c == '_' || c == '.' {
            let mut word = c.to_string();
            while let Some(&n) = chars.peek() {
                if n.is_alphanumeric() || n == '_' || n == '.' {
                    word.push(n);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(word.to_uppercase());
        }
    }
    out
}

fn is(w: &[String], i: usize, word: &str) -> bool {
    w.get(i).is_some_and(|x| x == word)
}

/// The table a `CREATE TABLE` statement creates.
fn created_table(w: &[String]) -> Option<String> {
    if !(is(w, 0, "CREATE") && w.iter().take(4).any(|x| x == "TABLE")) {
        return None;
    }
    let mut i = w.iter().position(|x| x == "TABLE")? + 1;
    if is(w, i, "IF") {
        i += 3;
    }
    w.get(i).map(|t| unqualified(t))
}

fn unqualified(name: &str) -> String {
    name.rsplit('.').next().unwrap_or(name).to_string()
}

fn rules_hit(w: &[String], created: &BTreeSet<String>) -> Vec<(&'static str, String)> {
    let mut hits = Vec::new();
    for i in 0..w.len() {
        if is(w, i, "DROP") && is(w, i + 1, "TABLE") {
            hits.push((
                "drop-table",
                "DROP TABLE deletes a table and its rows".into(),
            ));
        }
        if is(w, i, "DROP") && is(w, i + 1, "COLUMN") {
            hits.push((
                "drop-column",
                "DROP COLUMN deletes data and breaks the old release if it still reads it".into(),
            ));
        }
        if is(w, i, "DROP") && is(w, i + 1, "SCHEMA") {
            hits.push((
                "drop-schema",
                "DROP SCHEMA deletes every object in it".into(),
            ));
        }
        if is(w, i, "TRUNCATE") && (i == 0 || !is(w, i - 1, "OR")) {
            hits.push(("truncate", "TRUNCATE deletes every row".into()));
        }
        if is(w, i, "RENAME") {
            hits.push((
                "rename",
                "RENAME breaks the old release, which still uses the old name".into(),
            ));
        }
        if is(w, i, "ALTER") && i > 0 {
            let mut j = i + 1;
            if is(w, j, "COLUMN") {
                j += 1;
            }
            j += 1;
            let kind = w.get(i + 1).map(String::as_str).unwrap_or("");
            let not_column = matches!(
                kind,
                "TABLE" | "TYPE" | "INDEX" | "SCHEMA" | "DOMAIN" | "SEQUENCE" | "VIEW"
            );
            if !not_column
                && (is(w, j, "TYPE")
                    || (is(w, j, "SET") && is(w, j + 1, "DATA") && is(w, j + 2, "TYPE")))
            {
                hits.push((
                    "alter-column-type",
                    "ALTER COLUMN … TYPE rewrites the table under an exclusive lock".into(),
                ));
            }
        }
        if is(w, i, "SET") && is(w, i + 1, "NOT") && is(w, i + 2, "NULL") {
            hits.push((
                "set-not-null",
                "SET NOT NULL scans the table under an exclusive lock and fails on existing NULLs"
                    .into(),
            ));
        }
    }
    let has_where = w.iter().any(|x| x == "WHERE");
    if is(w, 0, "DELETE") && !has_where {
        hits.push((
            "delete-without-where",
            "DELETE without WHERE removes every row".into(),
        ));
    }
    if is(w, 0, "UPDATE") && !has_where {
        hits.push((
            "update-without-where",
            "UPDATE without WHERE changes every row".into(),
        ));
    }
    if is(w, 0, "CREATE") {
        let idx = if is(w, 1, "INDEX") {
            Some(2)
        } else if is(w, 1, "UNIQUE") && is(w, 2, "INDEX") {
            Some(3)
        } else {
            None
        };
        if let Some(k) = idx {
            if !is(w, k, "CONCURRENTLY") {
                let table = w
                    .iter()
                    .position(|x| x == "ON")
                    .and_then(|on| {
                        let t = if is(w, on + 1, "ONLY") {
                            on + 2
                        } else {
                            on + 1
                        };
                        w.get(t)
                    })
                    .map(|t| unqualified(t));
                let new_table = table.as_ref().is_some_and(|t| created.contains(t));
                if !new_table {
                    hits.push((
                        "create-index-without-concurrently",
                        "CREATE INDEX without CONCURRENTLY blocks writes to the table while it builds"
                            .into(),
                    ));
                }
            }
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(sql: &str) -> Vec<String> {
        lint(sql).findings.into_iter().map(|f| f.rule).collect()
    }

    #[test]
    fn flags_each_risky_pattern() {
        let cases = [
            ("drop table users;", "drop-table"),
            ("DROP TABLE IF EXISTS public.users CASCADE;", "drop-table"),
            ("alter table users drop column email;", "drop-column"),
            ("drop schema legacy cascade;", "drop-schema"),
            ("truncate bookings;", "truncate"),
            ("alter table users rename to people;", "rename"),
            ("alter table users rename column a to b;", "rename"),
            (
                "alter table users alter column age type bigint;",
                "alter-column-type",
            ),
            (
                "ALTER TABLE users ALTER age SET DATA TYPE bigint;",
                "alter-column-type",
            ),
            (
                "alter table users alter column email set not null;",
                "set-not-null",
            ),
            ("delete from sessions;", "delete-without-where"),
            ("update users set active = true;", "update-without-where"),
            (
                "create index users_email on users (email);",
                "create-index-without-concurrently",
            ),
            (
                "create unique index u on public.users (email);",
                "create-index-without-concurrently",
            ),
        ];
        for (sql, rule) in cases {
            assert_eq!(rules(sql), [rule], "{sql}");
            assert!(!lint(sql).allowed, "{sql}");
        }
    }

    #[test]
    fn passes_safe_ddl() {
        let safe = "-- drop table users; (just a note)\n\
            create table bookings (id bigserial primary key, note text default 'drop table x');\n\
            create index bookings_note on bookings (note);\n\
            alter table users add column nickname text;\n\
            create index concurrently users_nick on users (nickname);\n\
            delete from sessions where expires_at < now();\n\
            update users set active = true where id = 1;\n\
            alter type mood add value 'meh';\n\
            create table t (a int references users on delete cascade on update cascade);\n\
            insert into audit (what) values ('truncate; rename');";
        assert_eq!(rules(safe), Vec::<String>::new());
    }

    #[test]
    fn allow_marker_covers_named_rules_only() {
        let sql = "-- deploykit:allow drop-column\nalter table users drop column legacy;";
        let r = lint(sql);
        assert_eq!(r.findings.len(), 1);
        assert!(r.allowed);
        assert!(
            r.findings[0].message.starts_with("line 2:"),
            "{:?}",
            r.findings
        );

        let sql =
            "-- deploykit:allow drop-column\nalter table users drop column legacy;\ntruncate x;";
        assert!(!lint(sql).allowed, "truncate is not covered");
        let sql = "-- deploykit:allow all\ndrop table a;\ntruncate x;";
        assert!(lint(sql).allowed);
        let sql = "-- deploykit:allow drop-table, truncate\ndrop table a;\ntruncate x;";
        assert!(lint(sql).allowed);
    }
}
