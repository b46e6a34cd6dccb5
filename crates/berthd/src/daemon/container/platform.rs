//! `--platform` and images of another architecture: which image a create may
//! use (dockerd's words when the local one is another platform's, so that the
//! docker CLI pulls the right one), the warning for a foreign image run without
//! asking, and at start whether this host can run it at all: through a
//! binfmt_misc handler (QEMU's, from qemu-user-static) registered with the `F`
//! flag, which opens the emulator when registered so that it works inside any
//! container's root. Without one, the start fails saying so instead of an
//! "exec format error" from inside.

use crate::error::{ApiError, ApiResult};
use berth_api::ImageConfigBlob;

/// Docker's names: `aarch64` is arm64, `x86_64` amd64.
fn normal_arch(a: &str) -> &str {
    match a {
        "aarch64" => "arm64",
        "x86_64" | "x86-64" => "amd64",
        "i386" | "i686" => "386",
        a => a,
    }
}

fn format(os: &str, arch: &str, variant: Option<&str>) -> String {
    match variant.filter(|v| !v.is_empty()) {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    }
}

fn image_os(c: &ImageConfigBlob) -> &str {
    if c.os.is_empty() {
        "linux"
    } else {
        &c.os
    }
}

/// The image's platform as Docker prints it.
pub fn of_image(c: &ImageConfigBlob) -> String {
    format(
        image_os(c),
        normal_arch(&c.architecture),
        c.variant.as_deref(),
    )
}

fn host() -> String {
    format!("linux/{}", berth_image::host_arch())
}

/// Whether the image is this host's architecture (an image without one is).
fn native(c: &ImageConfigBlob) -> bool {
    c.architecture.is_empty() || normal_arch(&c.architecture) == berth_image::host_arch()
}

/// A create's `platform`: the image found by `reference` must be of it.
pub fn check_requested(reference: &str, c: &ImageConfigBlob, requested: &str) -> ApiResult<()> {
    let want = berth_registry::manifest::parse_platform(requested).ok_or_else(|| {
        ApiError::invalid(format!(
            "invalid platform {requested:?}: use os/arch[/variant]"
        ))
    })?;
    let arch_ok = normal_arch(&want.architecture) == normal_arch(&c.architecture)
        || (c.architecture.is_empty()
            && normal_arch(&want.architecture) == berth_image::host_arch());
    let variant_ok = match (&want.variant, &c.variant) {
        (Some(w), Some(h)) => w == h,
        _ => true,
    };
    if want.os == image_os(c) && arch_ok && variant_ok {
        return Ok(());
    }
    Err(ApiError::not_found(format!(
        "image with reference {reference} was found but does not match the specified platform: wanted {}, actual: {}",
        format(&want.os, normal_arch(&want.architecture), want.variant.as_deref()),
        of_image(c)
    )))
}

/// dockerd's warning for a foreign image run without asking for its platform.
pub fn warning(c: &ImageConfigBlob) -> Option<String> {
    (!native(c)).then(|| {
        format!(
            "The requested image's platform ({}) does not match the detected host platform ({}) and no specific platform was requested",
            of_image(c),
            host()
        )
    })
}

/// QEMU's name for an architecture (its `qemu-NAME` emulator).
fn qemu_name(arch: &str) -> &str {
    match arch {
        "arm64" => "aarch64",
        "arm" => "arm",
        "386" => "i386",
        "amd64" => "x86_64",
        "mips64le" => "mips64el",
        a => a,
    }
}

/// At start: a foreign image needs a binfmt_misc handler for its architecture,
/// enabled and registered with `F` (the emulator opened at registration, so
/// that it is found from inside the container's root).
pub fn check_runnable(c: &ImageConfigBlob) -> ApiResult<()> {
    if native(c) {
        return Ok(());
    }
    let arch = normal_arch(&c.architecture);
    let emulator = format!("qemu-{}", qemu_name(arch));
    let dir = std::path::Path::new("/proc/sys/fs/binfmt_misc");
    let mut unfixed = None;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let interpreter = text
            .lines()
            .find_map(|l| l.strip_prefix("interpreter "))
            .unwrap_or("");
        let base = interpreter.rsplit('/').next().unwrap_or("");
        if base != emulator && base != format!("{emulator}-static") {
            continue;
        }
        if !text.lines().any(|l| l == "enabled") {
            continue;
        }
        let flags = text
            .lines()
            .find_map(|l| l.strip_prefix("flags: "))
            .unwrap_or("");
        if flags.contains('F') {
            return Ok(());
        }
        unfixed = Some(e.file_name().to_string_lossy().into_owned());
    }
    Err(ApiError::invalid(match unfixed {
        Some(name) => format!(
            "image platform {} cannot run on this {} host: the binfmt_misc handler {name} was registered without the F flag, so its emulator cannot be found inside a container (register it with F, as qemu-user-static's binfmt-support files do)",
            of_image(c),
            host()
        ),
        None => format!(
            "image platform {} cannot run on this {} host: no binfmt_misc handler runs {arch} programs (install qemu-user-static and register its handlers with the F flag)",
            of_image(c),
            host()
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(arch: &str, variant: Option<&str>) -> ImageConfigBlob {
        ImageConfigBlob {
            architecture: arch.into(),
            os: "linux".into(),
            variant: variant.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn a_platform_must_match_the_image_in_dockerds_words() {
        check_requested("bb", &img("arm64", Some("v8")), "linux/arm64").unwrap();
        check_requested("bb", &img("arm64", None), "linux/aarch64").unwrap();
        let e = check_requested("bb", &img("arm64", None), "linux/amd64").unwrap_err();
        assert_eq!(e.kind, berth_api::ErrorKind::NotFound);
        assert_eq!(
            e.message,
            "image with reference bb was found but does not match the specified platform: wanted linux/amd64, actual: linux/arm64"
        );
        assert!(check_requested("bb", &img("arm", Some("v6")), "linux/arm/v7").is_err());
        assert_eq!(
            check_requested("bb", &img("arm64", None), "x")
                .unwrap_err()
                .kind,
            berth_api::ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn only_a_foreign_image_is_warned_about() {
        assert!(warning(&img(berth_image::host_arch(), None)).is_none());
        assert!(warning(&img("", None)).is_none());
        let w = warning(&img("s390x", None)).unwrap();
        assert!(
            w.starts_with("The requested image's platform (linux/s390x) does not match"),
            "{w}"
        );
    }
}
