//! Docker's filter matching: a `name` term is a regular expression (Go's
//! `regexp.MatchString`: anywhere in the text unless anchored), as in moby's
//! `filters.Args.Match`; a term that does not compile matches nothing.

/// Whether any of `terms` matches `text` (true when there are none).
pub fn regex_any(terms: &[String], text: &str) -> bool {
    terms.is_empty()
        || terms.iter().any(|t| {
            regex::Regex::new(t)
                .map(|re| re.is_match(text))
                .unwrap_or(false)
        })
}

/// `port[/proto]` as the `publish` and `expose` filters take it (tcp when no
/// protocol is given).
pub fn port_proto(term: &str) -> (String, String) {
    match term.split_once('/') {
        Some((p, proto)) => (p.to_string(), proto.to_ascii_lowercase()),
        None => (term.to_string(), "tcp".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_regular_expressions() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(regex_any(&t(&[]), "web"));
        assert!(regex_any(&t(&["^web$"]), "web"));
        assert!(regex_any(&t(&["eb"]), "web"));
        assert!(!regex_any(&t(&["^eb"]), "web"));
        assert!(!regex_any(&t(&["("]), "web"));
        assert_eq!(port_proto("80"), ("80".into(), "tcp".into()));
        assert_eq!(port_proto("53/UDP"), ("53".into(), "udp".into()));
    }
}
