//! Image references (`name[:tag][@digest]`), kept in Docker's familiar form:
//! `docker.io/library/busybox:latest` is stored and shown as `busybox:latest`.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Familiar repository name, e.g. `busybox`, `me/app`, `localhost:5000/app`.
    pub repo: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReferenceError {
    #[error("invalid reference format")]
    Invalid,
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    #[error(
        "invalid reference format: repository name (name) must not be more than 255 characters"
    )]
    TooLong,
}

fn valid_component(c: &str) -> bool {
    !c.is_empty()
        && c.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let hex = d.strip_prefix("sha256:").ok_or(ReferenceError::Invalid)?;
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ReferenceError::Invalid);
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A colon after the last slash starts the tag; one before it is a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(ReferenceError::Invalid);
            }
        }
        if name.is_empty() {
            return Err(ReferenceError::Invalid);
        }
        if name.len() > 255 {
            return Err(ReferenceError::TooLong);
        }
        let mut parts: Vec<&str> = name.split('/').collect();
        let has_registry = parts.len() > 1
            && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost");
        let path_start = usize::from(has_registry);
        if name.bytes().any(|b| b.is_ascii_uppercase()) && !has_registry {
            return Err(ReferenceError::Uppercase(name.to_string()));
        }
        if parts[path_start..].iter().any(|c| !valid_component(c)) {
            if parts[path_start..]
                .iter()
                .any(|c| c.bytes().any(|b| b.is_ascii_uppercase()))
            {
                return Err(ReferenceError::Uppercase(name.to_string()));
            }
            return Err(ReferenceError::Invalid);
        }
        if parts[0] == "docker.io" || parts[0] == "index.docker.io" {
            parts.remove(0);
            if parts.len() > 1 && parts[0] == "library" {
                parts.remove(0);
            }
        }
        Ok(Reference {
            repo: parts.join("/"),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// `repo:tag`, with `latest` when no tag and no digest was given.
    pub fn tagged(&self) -> Option<String> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(format!("{}:{t}", self.repo)),
            (None, None) => Some(format!("{}:latest", self.repo)),
            (None, Some(_)) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn familiar_forms() {
        let r = Reference::parse("docker.io/library/busybox").unwrap();
        assert_eq!(r.tagged().unwrap(), "busybox:latest");
        let r = Reference::parse("localhost:5000/team/app:v1.2").unwrap();
        assert_eq!(r.repo, "localhost:5000/team/app");
        assert_eq!(r.tag.as_deref(), Some("v1.2"));
        let r = Reference::parse("me/app").unwrap();
        assert_eq!(r.tagged().unwrap(), "me/app:latest");
    }

    #[test]
    fn bad_references_are_refused() {
        assert_eq!(
            Reference::parse("BusyBox"),
            Err(ReferenceError::Uppercase("BusyBox".into()))
        );
        assert_eq!(Reference::parse("a:b:c"), Err(ReferenceError::Invalid));
        assert_eq!(Reference::parse(""), Err(ReferenceError::Invalid));
        assert_eq!(
            Reference::parse("x@sha256:12"),
            Err(ReferenceError::Invalid)
        );
        assert_eq!(Reference::parse("-x"), Err(ReferenceError::Invalid));
    }
}
