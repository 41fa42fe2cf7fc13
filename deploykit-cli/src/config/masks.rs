//! Which values of a loaded config are secrets everywhere they appear.
//!
//! A secret value travels further than its [`Secret`] field: `${DATABASE_URL}` in a
//! command migration's argv, a `repo` URL with a token in a `git clone` line, a
//! tool echoing its connection string. Masking them when the config loads (see
//! [`deploykit_core::secret::mask`]) lets every command, error, event, journal
//! line, summary and webhook body hide them, whichever path they took.

use std::collections::BTreeMap;

use deploykit_core::Secret;

use super::{Config, ProbeConfig, TargetConfig};

/// Names (of `${VAR}`s and of the app's env keys) whose values are secrets wherever
/// they appear. The app's env also holds plain settings (`PORT`, `APP_NAME`,
/// `NODE_ENV`); masking those would blank ordinary words out of every message, and
/// their values never leave a command line unredacted anyway (`KEY=[redacted]`).
const SECRET_NAME_PARTS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "TOKEN",
    "KEY",
    "CREDENTIAL",
    "AUTH",
    "DSN",
    "DATABASE_URL",
    "DB_URL",
    "PRIVATE",
    "COOKIE",
    "SESSION",
];

/// Whether `name` names a secret: it has a secret-looking part and is not a path
/// to one (`SSH_KEY_FILE`).
fn secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_NAME_PARTS.iter().any(|p| upper.contains(p))
        && !upper.ends_with("_FILE")
        && !upper.ends_with("_PATH")
}

/// Masks every secret of `config`: its database URLs, webhooks and passwords, the
/// app's env values under secret names, credentials in URLs (`repo`, probes, env),
/// and the values of secret-named variables that `text` (the file as written) uses.
pub fn mask_secrets(config: &Config, text: &str, vars: &BTreeMap<String, String>) {
    for env in config.environments.values() {
        if let Some(db) = &env.database {
            mask(&db.url);
        }
        if let Some(hook) = &env.notify.webhook {
            mask(hook);
        }
        if let Some(backup) = &env.backup {
            if let Ok(super::BackupPlace::Store {
                access_key_id,
                secret_access_key,
                ..
            }) = backup.place()
            {
                for s in access_key_id.iter().chain(secret_access_key.iter()) {
                    mask(s);
                }
            }
        }
        if let Some(TargetConfig::Pm2(p)) = &env.target {
            for (k, v) in &p.env {
                if secret_name(k) {
                    mask(v);
                }
                mask_url_credentials(v.expose());
            }
            if let Some(pw) = &p.password {
                mask(pw);
            }
            mask_url_credentials(&p.repo);
        }
        for probe in &env.probes {
            if let ProbeConfig::Http { url, .. } = probe {
                mask_url_credentials(url);
            }
        }
    }
    for name in super::interpolate::variable_names(text) {
        if secret_name(&name) {
            if let Some(v) = vars.get(&name) {
                mask(&Secret::new(v.clone()));
            }
        }
    }
}

/// Masks `secret`, unless it still holds a `${VAR}` that was not set: that text is
/// the config's own, and the error naming the missing variable must show it.
fn mask(secret: &Secret) {
    if !secret.expose().contains("${") {
        deploykit_core::secret::mask(secret);
    }
}

/// An `http(s)` URL with a user part carries credentials (`https://user:TOKEN@…`,
/// `https://TOKEN@…`); an `ssh://deploy@host` user is a name, not a secret.
fn mask_url_credentials(url: &str) {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return;
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        mask(&Secret::new(url));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_told_from_settings() {
        for n in [
            "DATABASE_URL",
            "API_TOKEN",
            "jwt_secret",
            "STRIPE_KEY",
            "PGPASSWORD",
        ] {
            assert!(secret_name(n), "{n}");
        }
        for n in [
            "PORT",
            "APP_NAME",
            "NODE_ENV",
            "MUVA_SSH_KEY_FILE",
            "MUVA_STAGING_URL",
        ] {
            assert!(!secret_name(n), "{n}");
        }
    }
}
