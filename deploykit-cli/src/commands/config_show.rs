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
    match mode {
        Mode::Json => println!("{}", serde_json::to_string(&loaded.config)?),
        _ => print!("{}", toml::to_string_pretty(&loaded.config)?),
    }
    Ok(exit::OK)
}
