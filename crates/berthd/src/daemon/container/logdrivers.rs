//! Docker's log drivers that send each line elsewhere: `syslog`, `gelf`, `fluentd`
//! and `journald`. berthd checks their options with dockerd's words, renders the
//! `tag` template and picks the `labels`/`env` attributes; the container's shim
//! encodes and sends (berth-shim/src/remote.rs), and keeps the local cache that
//! `docker logs` reads (Docker's dual logging; `cache-disabled=true` turns it off).

use crate::daemon::container::record::Record;
use crate::error::{ApiError, ApiResult};
use berth_runtime::spec::RemoteLog;
use std::collections::BTreeMap;

/// The remote drivers berth has.
pub const REMOTE: &[&str] = &["syslog", "gelf", "fluentd", "journald"];

/// Options every driver takes (Docker's log-driver-independent ones).
const COMMON: &[&str] = &["mode", "max-buffer-size"];
/// The dual-logging cache's options, on every remote driver.
const CACHE: &[&str] = &[
    "cache-disabled",
    "cache-max-size",
    "cache-max-file",
    "cache-compress",
];
/// Attribute options, and the tag.
const ATTRS: &[&str] = &["tag", "labels", "labels-regex", "env", "env-regex"];

fn driver_options(driver: &str) -> &'static [&'static str] {
    match driver {
        "syslog" => &[
            "syslog-address",
            "syslog-facility",
            "syslog-format",
            "syslog-tls-ca-cert",
            "syslog-tls-cert",
            "syslog-tls-key",
            "syslog-tls-skip-verify",
        ],
        "gelf" => &[
            "gelf-address",
            "gelf-compression-type",
            "gelf-compression-level",
            "gelf-tcp-max-reconnect",
            "gelf-tcp-reconnect-delay",
        ],
        "fluentd" => &[
            "fluentd-address",
            "fluentd-async",
            "fluentd-async-connect",
            "fluentd-buffer-limit",
            "fluentd-retry-wait",
            "fluentd-max-retries",
            "fluentd-sub-second-precision",
            "fluentd-request-ack",
            "fluentd-write-timeout",
        ],
        _ => &[],
    }
}

/// The `mode` and `max-buffer-size` options of any driver: (non-blocking, bytes).
pub fn mode(opts: &BTreeMap<String, String>) -> ApiResult<(bool, u64)> {
    let non_blocking = match opts.get("mode").map(String::as_str) {
        None | Some("") | Some("blocking") => false,
        Some("non-blocking") => true,
        Some(m) => {
            return Err(ApiError::invalid(format!(
                "logger: logging mode not supported: {m}"
            )))
        }
    };
    let max = match opts.get("max-buffer-size") {
        None => 1 << 20,
        Some(_) if !non_blocking => {
            return Err(ApiError::invalid(
                "logger: max-buffer-size option is only supported with 'mode=non-blocking'",
            ))
        }
        Some(v) => berth_api::parse_size(v)
            .filter(|n| *n > 0)
            .ok_or_else(|| ApiError::invalid(format!("logger: invalid max-buffer-size: {v}")))?
            as u64,
    };
    Ok((non_blocking, max))
}

/// Checks a remote driver's options (the cache's are checked with the rotation).
pub fn validate(driver: &str, opts: &BTreeMap<String, String>) -> ApiResult<()> {
    for k in opts.keys() {
        let known = COMMON.contains(&k.as_str())
            || CACHE.contains(&k.as_str())
            || ATTRS.contains(&k.as_str())
            || driver_options(driver).contains(&k.as_str());
        if !known {
            return Err(ApiError::invalid(format!(
                "unknown log opt '{k}' for {driver} log driver"
            )));
        }
    }
    mode(opts)?;
    match driver {
        "syslog" => {
            address(
                opts.get("syslog-address").map(String::as_str),
                &["unix", "unixgram", "udp", "tcp", "tcp+tls"],
                None,
            )?;
            for k in ["syslog-tls-ca-cert", "syslog-tls-cert", "syslog-tls-key"] {
                if let Some(f) = opts.get(k).filter(|f| !f.is_empty()) {
                    if !std::path::Path::new(f).is_file() {
                        return Err(ApiError::invalid(format!(
                            "{k}: open {f}: no such file or directory"
                        )));
                    }
                }
            }
            if opts.contains_key("syslog-tls-cert") != opts.contains_key("syslog-tls-key") {
                return Err(ApiError::invalid(
                    "syslog-tls-cert and syslog-tls-key go together",
                ));
            }
            if let Some(v) = opts.get("syslog-tls-skip-verify") {
                v.parse::<bool>().map_err(|_| {
                    ApiError::invalid(format!("invalid value for syslog-tls-skip-verify: {v}"))
                })?;
            }
            facility(opts.get("syslog-facility").map(String::as_str))?;
            match opts.get("syslog-format").map(String::as_str) {
                None | Some("") | Some("rfc3164") | Some("rfc5424") | Some("rfc5424micro") => {}
                Some(f) => {
                    return Err(ApiError::invalid(format!(
                    "Invalid syslog format: {f}. Valid formats are: rfc3164, rfc5424, rfc5424micro"
                )))
                }
            }
        }
        "gelf" => {
            let a = opts.get("gelf-address").map(String::as_str).unwrap_or("");
            if a.is_empty() {
                return Err(ApiError::invalid("gelf-address is a required parameter"));
            }
            address(Some(a), &["udp", "tcp"], None)?;
            match opts.get("gelf-compression-type").map(String::as_str) {
                None | Some("gzip") | Some("zlib") | Some("none") => {}
                Some(t) => {
                    return Err(ApiError::invalid(format!(
                        "Unknown gelf compression type {t}"
                    )))
                }
            }
            if let Some(l) = opts.get("gelf-compression-level") {
                if !l.parse::<i32>().is_ok_and(|n| (-1..=9).contains(&n)) {
                    return Err(ApiError::invalid(format!(
                        "invalid gelf compression level: {l}"
                    )));
                }
            }
        }
        "fluentd" => {
            address(
                opts.get("fluentd-address").map(String::as_str),
                &["tcp", "unix"],
                Some("tcp"),
            )?;
            for k in [
                "fluentd-async",
                "fluentd-async-connect",
                "fluentd-sub-second-precision",
            ] {
                if let Some(v) = opts.get(k) {
                    v.parse::<bool>()
                        .map_err(|_| ApiError::invalid(format!("invalid value for {k}: {v}")))?;
                }
            }
        }
        "journald" if !std::path::Path::new(JOURNAL_SOCKET).exists() => {
            return Err(ApiError::invalid("journald is not enabled on this host"));
        }
        _ => {}
    }
    Ok(())
}

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// syslog's facilities by name, or a number.
fn facility(f: Option<&str>) -> ApiResult<u8> {
    const NAMES: [&str; 24] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "", "", "", "", "local0", "local1", "local2", "local3", "local4",
        "local5", "local6", "local7",
    ];
    match f {
        None | Some("") => Ok(3),
        Some(f) => {
            if let Some(i) = NAMES.iter().position(|n| !n.is_empty() && *n == f) {
                return Ok(i as u8);
            }
            match f.parse::<u8>() {
                Ok(n) if n <= 23 => Ok(n),
                _ => Err(ApiError::invalid(format!("invalid syslog facility: {f}"))),
            }
        }
    }
}

/// A driver's address as `scheme://rest`, checked against the schemes it takes;
/// a bare `host:port` gets `default_scheme`.
fn address(a: Option<&str>, schemes: &[&str], default_scheme: Option<&str>) -> ApiResult<String> {
    let Some(a) = a.filter(|a| !a.is_empty()) else {
        return Ok(String::new());
    };
    let (scheme, rest) = match a.split_once("://") {
        Some((s, r)) => (s, r),
        None => match default_scheme {
            Some(d) => (d, a),
            None => {
                return Err(ApiError::invalid(format!(
                    "invalid address {a}: give a scheme, one of {}",
                    schemes.join(", ")
                )))
            }
        },
    };
    if !schemes.contains(&scheme) {
        return Err(ApiError::invalid(format!(
            "unsupported scheme: '{scheme}' in {a}"
        )));
    }
    if rest.is_empty() {
        return Err(ApiError::invalid(format!("invalid address {a}")));
    }
    if !scheme.starts_with("unix") && !rest.contains(':') {
        return Err(ApiError::invalid(format!(
            "invalid address {a}: missing port"
        )));
    }
    Ok(format!("{scheme}://{rest}"))
}

/// Docker's `tag` template: `{{.ID}}` (12), `{{.FullID}}`, `{{.Name}}`,
/// `{{.ImageID}}` (12), `{{.ImageFullID}}`, `{{.ImageName}}`, `{{.DaemonName}}`.
pub fn render_tag(template: &str, r: &Record) -> ApiResult<String> {
    let image_full = r.image.clone();
    let image_short = image_full
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect::<String>();
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| {
            ApiError::invalid(format!("template: tag: unclosed action in {template}"))
        })?;
        let field = after[..end].trim();
        out.push_str(&match field {
            ".ID" => r.id[..12].to_string(),
            ".FullID" => r.id.clone(),
            ".Name" => r.name.clone(),
            ".ImageID" => image_short.clone(),
            ".ImageFullID" => image_full.clone(),
            ".ImageName" => r.config.image.clone(),
            ".DaemonName" => "docker".to_string(),
            other => {
                return Err(ApiError::invalid(format!(
                    "template: tag: can't evaluate field {}",
                    other.trim_start_matches('.')
                )))
            }
        });
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The `labels`/`labels-regex`/`env`/`env-regex` attributes of a container.
fn extra(opts: &BTreeMap<String, String>, r: &Record) -> ApiResult<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    let labels = r.config.labels.clone().unwrap_or_default();
    let list = |k: &str| -> Vec<String> {
        opts.get(k)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let re = |k: &str| -> ApiResult<Option<regex::Regex>> {
        opts.get(k)
            .map(|v| {
                regex::Regex::new(v)
                    .map_err(|e| ApiError::invalid(format!("invalid {k} {v:?}: {e}")))
            })
            .transpose()
    };
    let label_re = re("labels-regex")?;
    for (k, v) in &labels {
        if list("labels").contains(k) || label_re.as_ref().is_some_and(|r| r.is_match(k)) {
            out.push((k.clone(), v.clone()));
        }
    }
    let env_re = re("env-regex")?;
    for e in r.config.env.iter().flatten() {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        if list("env").iter().any(|x| x == k) || env_re.as_ref().is_some_and(|r| r.is_match(k)) {
            out.push((k.to_string(), v.to_string()));
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

/// What the shim needs to send container `r`'s log remotely; None for the local
/// drivers. `shim` is berth-shim's path (berth-tls-relay is beside it).
pub fn remote(r: &Record, shim: &std::path::Path) -> ApiResult<Option<RemoteLog>> {
    let cfg = &r.host_config.log_config;
    if !REMOTE.contains(&cfg.kind.as_str()) {
        return Ok(None);
    }
    let opts = cfg.config.clone().unwrap_or_default();
    validate(&cfg.kind, &opts)?;
    let (non_blocking, max_buffer) = mode(&opts)?;
    let tag = render_tag(opts.get("tag").map_or("{{.ID}}", String::as_str), r)?;
    let address = match cfg.kind.as_str() {
        "syslog" => {
            let a = address(
                opts.get("syslog-address").map(String::as_str),
                &["unix", "unixgram", "udp", "tcp", "tcp+tls"],
                None,
            )?;
            if a.is_empty() {
                "unixgram:///dev/log".to_string()
            } else {
                a
            }
        }
        "gelf" => address(
            opts.get("gelf-address").map(String::as_str),
            &["udp", "tcp"],
            None,
        )?,
        "fluentd" => {
            let a = address(
                opts.get("fluentd-address").map(String::as_str),
                &["tcp", "unix"],
                Some("tcp"),
            )?;
            if a.is_empty() {
                "tcp://127.0.0.1:24224".to_string()
            } else {
                a
            }
        }
        _ => format!("unixgram://{JOURNAL_SOCKET}"),
    };
    let mut options = BTreeMap::new();
    for (k, v) in &opts {
        if driver_options(&cfg.kind).contains(&k.as_str()) {
            options.insert(k.clone(), v.clone());
        }
    }
    if cfg.kind == "syslog" {
        options.insert(
            "syslog-facility".into(),
            facility(opts.get("syslog-facility").map(String::as_str))?.to_string(),
        );
    }
    let mut command = r.path.clone();
    for a in &r.args {
        command.push(' ');
        command.push_str(a);
    }
    Ok(Some(RemoteLog {
        driver: cfg.kind.clone(),
        tag,
        options,
        extra: extra(&opts, r)?,
        non_blocking,
        max_buffer,
        container_id: r.id.clone(),
        container_name: format!("/{}", r.name),
        image_id: r.image.clone(),
        image_name: r.config.image.clone(),
        command,
        created: r.created.clone(),
        hostname: rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
        tls_relay: address
            .starts_with("tcp+tls://")
            .then(|| shim.with_file_name("berth-tls-relay")),
        address,
    }))
}

/// The local cache of a remote driver, as (max-size, max-file, compress); None
/// with `cache-disabled=true`. Docker's defaults: 20 MB, 5 files, compressed.
pub fn cache(opts: &BTreeMap<String, String>) -> ApiResult<Option<(u64, u32, bool)>> {
    let flag = |k: &str, default: bool| -> ApiResult<bool> {
        opts.get(k).map_or(Ok(default), |v| {
            v.parse::<bool>()
                .map_err(|_| ApiError::invalid(format!("invalid value for log-opt {k}: {v}")))
        })
    };
    if flag("cache-disabled", false)? {
        return Ok(None);
    }
    let size = match opts.get("cache-max-size") {
        None => 20 << 20,
        Some(v) => berth_api::parse_size(v).filter(|n| *n > 0).ok_or_else(|| {
            ApiError::invalid(format!("invalid value for log-opt cache-max-size: {v}"))
        })? as u64,
    };
    let files = match opts.get("cache-max-file") {
        None => 5,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ApiError::invalid("max-file cannot be less than 1"))?,
    };
    Ok(Some((size, files, flag("cache-compress", true)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_are_checked_with_dockers_words() {
        let e = validate("syslog", &opts(&[("max-size", "1m")])).unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown log opt 'max-size' for syslog log driver"),
            "{e}"
        );
        let e = validate("gelf", &opts(&[])).unwrap_err();
        assert!(
            e.to_string()
                .contains("gelf-address is a required parameter"),
            "{e}"
        );
        let e = validate("syslog", &opts(&[("syslog-address", "ftp://x:1")])).unwrap_err();
        assert!(e.to_string().contains("unsupported scheme: 'ftp'"), "{e}");
        let e = validate("syslog", &opts(&[("syslog-facility", "nope")])).unwrap_err();
        assert!(
            e.to_string().contains("invalid syslog facility: nope"),
            "{e}"
        );
        let e = validate("fluentd", &opts(&[("mode", "sometimes")])).unwrap_err();
        assert!(
            e.to_string()
                .contains("logging mode not supported: sometimes"),
            "{e}"
        );
        let e = validate("fluentd", &opts(&[("max-buffer-size", "4m")])).unwrap_err();
        assert!(
            e.to_string()
                .contains("only supported with 'mode=non-blocking'"),
            "{e}"
        );
        validate(
            "fluentd",
            &opts(&[
                ("fluentd-address", "127.0.0.1:24224"),
                ("tag", "x.{{.Name}}"),
                ("mode", "non-blocking"),
                ("max-buffer-size", "4m"),
            ]),
        )
        .unwrap();
        assert_eq!(facility(Some("local3")).unwrap(), 19);
        assert_eq!(facility(None).unwrap(), 3);
        assert_eq!(cache(&opts(&[("cache-disabled", "true")])).unwrap(), None);
        assert_eq!(cache(&opts(&[])).unwrap(), Some((20 << 20, 5, true)));
    }
}
