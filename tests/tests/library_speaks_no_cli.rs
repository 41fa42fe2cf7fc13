//! The library crates (core and the adapters) do not know how an embedder's
//! commands are spelled: no text they build names a `deploykit …` command. Their
//! errors carry a `NextStep` instead, which the CLI words with its own commands
//! (deploykit-cli/src/render/next_step.rs).

use std::path::{Path, PathBuf};

/// Command words the CLI has; a library text naming one speaks CLI.
const COMMANDS: &[&str] = &[
    "deploy ", "deploy`", "recover", "rollback", "status", "history", "backup", "migrate ",
    "health", "lock ", "state ", "secrets", "config ", "init", "demo",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// Every non-comment line of the library crates that names `deploykit <command>`.
fn cli_words() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for krate in ["deploykit-core", "deploykit-pm2", "deploykit-docker"] {
        rust_files(&root.join(krate).join("src"), &mut files);
    }
    assert!(files.len() > 50, "found only {} files", files.len());
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            let speaks = code.match_indices("deploykit ").any(|(at, _)| {
                let rest = &code[at + "deploykit ".len()..];
                COMMANDS.iter().any(|c| rest.starts_with(c))
            });
            if speaks {
                found.push(format!("{}:{}: {}", file.display(), n + 1, code));
            }
        }
    }
    found
}

#[test]
fn no_library_text_names_a_deploykit_command() {
    let found = cli_words();
    assert!(
        found.is_empty(),
        "library texts that spell CLI commands (return a NextStep instead):\n{}",
        found.join("\n")
    );
}
