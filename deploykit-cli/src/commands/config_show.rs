//! `deploykit config show`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::config;
use crate::exit;
use crate::render::Mode;

/// One environment as `config show --env` prints it, in the file's own shape.
#[derive(Serialize)]
struct OneEnvironment<'a> {
    environments: BTreeMap<&'a str, &'a config::Environment>,
}

/// Prints the interpolated config (or one environment of it, with `[defaults]`
/// merged in); secrets print as `[redacted]`.
pub fn run(config_path: &Path, env: Option<&str>, mode: Mode) -> Result<u8> {
    let loaded = config::load(config_path)?;
    match env {
        Some(name) => {
            let one = OneEnvironment {
                environments: BTreeMap::from([(name, loaded.env(name)?)]),
            };
            print_redacted(&one, mode)?;
        }
        None => {
            for name in loaded.missing.keys() {
                loaded.env(name)?;
            }
            print_redacted(&loaded.config, mode)?;
        }
    }
    Ok(exit::OK)
}

/// Secret fields print as `[redacted]`; credentials in plain fields (a `repo`
/// URL's token, a secret-named variable in argv) are masked here.
fn print_redacted(shown: &impl Serialize, mode: Mode) -> Result<()> {
    match mode {
        Mode::Json => {
            let mut v = serde_json::to_value(shown)?;
            deploykit_core::secret::redact_json(&mut v);
            println!("{v}")
        }
        _ => print!(
            "{}",
            deploykit_core::redact(&toml::to_string_pretty(shown)?, &[])
        ),
    }
    Ok(())
}
