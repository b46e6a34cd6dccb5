//! Container names: validation and Docker-style random `adjective_surname` names.

use rand::seq::IndexedRandom;

const ADJECTIVES: &[&str] = &[
    "admiring",
    "brave",
    "busy",
    "calm",
    "clever",
    "cool",
    "dazzling",
    "eager",
    "elegant",
    "festive",
    "gallant",
    "gifted",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "kind",
    "lucid",
    "modest",
    "nifty",
    "optimistic",
    "peaceful",
    "quirky",
    "relaxed",
    "serene",
    "sharp",
    "stoic",
    "tender",
    "upbeat",
    "vibrant",
    "wizardly",
    "youthful",
    "zealous",
];

const SURNAMES: &[&str] = &[
    "agnesi", "babbage", "bell", "boole", "cerf", "curie", "darwin", "dijkstra", "easley",
    "einstein", "euler", "feynman", "franklin", "galileo", "goldberg", "hamilton", "hopper",
    "hypatia", "johnson", "kepler", "knuth", "lamport", "liskov", "lovelace", "mccarthy",
    "noether", "pascal", "ritchie", "shannon", "thompson", "turing", "wozniak", "yalow",
];

pub fn random() -> String {
    let mut rng = rand::rng();
    format!(
        "{}_{}",
        ADJECTIVES.choose(&mut rng).expect("non-empty"),
        SURNAMES.choose(&mut rng).expect("non-empty")
    )
}

/// Docker's rule: `/?[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid(name: &str) -> bool {
    let n = name.strip_prefix('/').unwrap_or(name);
    let mut b = n.bytes();
    n.len() >= 2
        && b.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
}

/// A new 64-hex id (containers, networks, endpoints).
pub fn new_id() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_name_rule() {
        assert!(valid("web"));
        assert!(valid("/web_1.a-b"));
        assert!(!valid("a"));
        assert!(!valid("_web"));
        assert!(!valid("we b"));
        assert!(valid(&random()));
    }
}
