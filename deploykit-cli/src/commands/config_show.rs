//! `deploykit config show`.

use std::path::Path;

use anyhow::Result;

use crate::config;
use crate::exit;
use crate::render::Mode;

/// Prints the interpolated config; secrets print as `[redacted]`.
pub fn run(config_path: &Path, mode: Mode) -> Result<u8> {
    let loaded = config::load(config_path)?;
    for name in loaded.missing.keys() {
        loaded.env(name)?;
    }
    // Secret fields print as `[redacted]`; credentials in plain fields (a `repo`
    // URL's token, a secret-named variable in argv) are masked here.
    match mode {
        Mode::Json => {
            let mut v = serde_json::to_value(&loaded.config)?;
            deploykit_core::secret::redact_json(&mut v);
            println!("{v}")
        }
        _ => print!(
            "{}",
            deploykit_core::redact(&toml::to_string_pretty(&loaded.config)?, &[])
        ),
    }
    Ok(exit::OK)
}
