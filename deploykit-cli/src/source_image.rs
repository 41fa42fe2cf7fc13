//! The image a Compose release is made from when CI built it (`image_source =
//! "pull"` or `"present"`): the target's `source_image` with the run's
//! `--image-tag`, checked before anything connects.

use crate::config::{ComposeConfig, ComposeImageSource};
use deploykit_docker::ImageSource;

/// Where the target's image comes from for this run, or why the config and the
/// run's options do not say.
pub fn image_source(
    env: &str,
    c: &ComposeConfig,
    tag: Option<&str>,
) -> Result<Option<ImageSource>, String> {
    let kind = match c.image_source {
        ComposeImageSource::Build => {
            return match tag {
                Some(_) => Err(format!(
                    "environment {env}: --image-tag names the tag of a pulled or present image, \
                     but the target builds its image on the host; set image_source = \"pull\" \
                     or \"present\" and source_image, or leave --image-tag out"
                )),
                None => Ok(None),
            };
        }
        ComposeImageSource::Pull => "pull",
        ComposeImageSource::Present => "present",
    };
    let Some(source) = c.source_image.as_deref() else {
        return Err(format!(
            "environment {env}: image_source = \"{kind}\" needs source_image, the image CI \
             built (e.g. source_image = \"ghcr.io/acme/{}\")",
            c.image
        ));
    };
    let reference = match (has_tag_or_digest(source), tag) {
        (true, Some(_)) => {
            return Err(format!(
                "environment {env}: source_image {source} already names a tag or digest; leave \
                 --image-tag out, or write source_image without the tag"
            ))
        }
        (true, None) => source.to_string(),
        (false, Some(tag)) => {
            check_tag(env, tag)?;
            format!("{source}:{tag}")
        }
        (false, None) => {
            return Err(format!(
                "environment {env}: source_image {source} has no tag; pass --image-tag with the \
                 tag CI gave this commit's image"
            ))
        }
    };
    check_reference(env, &reference)?;
    Ok(Some(match c.image_source {
        ComposeImageSource::Pull => ImageSource::Pull { image: reference },
        _ => ImageSource::Present { image: reference },
    }))
}

/// Whether the reference's last path part carries `:tag`, or it ends in a digest
/// (`host:5000/app` has a registry port, not a tag).
fn has_tag_or_digest(reference: &str) -> bool {
    reference.contains('@')
        || reference
            .rsplit('/')
            .next()
            .is_some_and(|l| l.contains(':'))
}

/// Docker's tag grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn check_tag(env: &str, tag: &str) -> Result<(), String> {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && tag.len() <= 128 {
        return Ok(());
    }
    Err(format!(
        "environment {env}: --image-tag {:?} is not a Docker tag (letters, digits, '_', '.' \
         and '-', at most 128, not starting with '.' or '-')",
        tag.chars().take(40).collect::<String>()
    ))
}

/// A reference that is one argv word of a plain shape: it is passed to `docker
/// pull` on the host.
fn check_reference(env: &str, reference: &str) -> Result<(), String> {
    let ok = !reference.is_empty()
        && !reference.starts_with('-')
        && reference
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/' | ':' | '@'));
    if ok {
        return Ok(());
    }
    Err(format!(
        "environment {env}: source_image {:?} is not an image reference",
        reference.chars().take(80).collect::<String>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compose(source: ComposeImageSource, image: Option<&str>) -> ComposeConfig {
        let mut text = String::from(
            "project = \"crm\"\nfiles = [\"c.yml\"]\nservice = \"backend\"\nimage = \"crm/backend\"\n",
        );
        text.push_str(match source {
            ComposeImageSource::Build => "",
            ComposeImageSource::Pull => "image_source = \"pull\"\n",
            ComposeImageSource::Present => "image_source = \"present\"\n",
        });
        if let Some(i) = image {
            text.push_str(&format!("source_image = \"{i}\"\n"));
        }
        toml::from_str(&text).unwrap()
    }

    fn image(source: &Option<ImageSource>) -> String {
        match source {
            Some(ImageSource::Pull { image }) => format!("pull {image}"),
            Some(ImageSource::Present { image }) => format!("present {image}"),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn a_tag_comes_from_the_run_or_the_reference_never_both() {
        let pull = compose(ComposeImageSource::Pull, Some("127.0.0.1:5000/crm/backend"));
        let got = image_source("prod", &pull, Some("v1.2.3")).unwrap();
        assert_eq!(image(&got), "pull 127.0.0.1:5000/crm/backend:v1.2.3");
        let err = image_source("prod", &pull, None).unwrap_err();
        assert!(err.contains("pass --image-tag"), "{err}");

        let tagged = compose(ComposeImageSource::Present, Some("crm/backend:ci-41"));
        let got = image_source("prod", &tagged, None).unwrap();
        assert_eq!(image(&got), "present crm/backend:ci-41");
        assert!(image_source("prod", &tagged, Some("x"))
            .unwrap_err()
            .contains("already names a tag"));
        let digest = compose(ComposeImageSource::Pull, Some("crm/backend@sha256:abc"));
        assert!(image_source("prod", &digest, None).is_ok());
    }

    #[test]
    fn build_takes_no_tag_and_pull_needs_a_source() {
        let build = compose(ComposeImageSource::Build, None);
        assert!(image_source("prod", &build, None).unwrap().is_none());
        assert!(image_source("prod", &build, Some("v1"))
            .unwrap_err()
            .contains("builds its image on the host"));
        let err =
            image_source("prod", &compose(ComposeImageSource::Pull, None), Some("v1")).unwrap_err();
        assert!(err.contains("needs source_image"), "{err}");
    }

    #[test]
    fn tags_and_references_that_could_break_argv_are_refused() {
        let pull = compose(ComposeImageSource::Pull, Some("crm/backend"));
        for bad in ["-rm", ".x", "a b", "v1;rm", ""] {
            assert!(image_source("prod", &pull, Some(bad)).is_err(), "{bad}");
        }
        let odd = compose(ComposeImageSource::Pull, Some("crm/$(id):x"));
        assert!(image_source("prod", &odd, None)
            .unwrap_err()
            .contains("not an image reference"));
    }
}
