//! Signal names as Docker accepts them: `KILL`, `SIGKILL`, `sigkill`, `9`, `SIGRTMIN+3`.

const NAMES: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];

const RTMIN: i32 = 34;
const RTMAX: i32 = 64;

pub fn parse(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=RTMAX).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let bare = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(off) = bare.strip_prefix("RTMIN+") {
        return off
            .parse::<i32>()
            .ok()
            .map(|o| RTMIN + o)
            .filter(|n| *n <= RTMAX);
    }
    if let Some(off) = bare.strip_prefix("RTMAX-") {
        return off
            .parse::<i32>()
            .ok()
            .map(|o| RTMAX - o)
            .filter(|n| *n >= RTMIN);
    }
    match bare {
        "RTMIN" => Some(RTMIN),
        "RTMAX" => Some(RTMAX),
        _ => NAMES.iter().find(|(n, _)| *n == bare).map(|(_, v)| *v),
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn docker_spellings() {
        assert_eq!(parse("SIGKILL"), Some(9));
        assert_eq!(parse("kill"), Some(9));
        assert_eq!(parse("15"), Some(15));
        assert_eq!(parse("SIGRTMIN+2"), Some(36));
        assert_eq!(parse("NOPE"), None);
        assert_eq!(parse("0"), None);
        assert_eq!(parse("65"), None);
    }
}
