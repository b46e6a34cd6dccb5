//! DNS messages for the embedded resolver at 127.0.0.11: reading a query's question
//! and writing answers for container names. Anything not answered from berth's own
//! names is relayed to the host's resolvers unchanged by the daemon.

use std::net::IpAddr;

pub const TYPE_A: u16 = 1;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

pub const RCODE_OK: u8 = 0;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;

/// The embedded server's address inside each container.
pub const RESOLVER_IP: &str = "127.0.0.11";

/// What a query asks, and where its question ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Lowercase, without the trailing dot.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// Offset just past the question in the query.
    end: usize,
}

/// Reads the single question of a standard query; None for anything else (a
/// response, another opcode, several questions, a malformed message).
pub fn parse_query(msg: &[u8]) -> Option<Question> {
    if msg.len() < 12 {
        return None;
    }
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    let qr = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    if qr || opcode != 0 || qdcount != 1 {
        return None;
    }
    let mut at = 12;
    let mut labels: Vec<String> = Vec::new();
    loop {
        let len = *msg.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        // No compression pointers in a question we accept.
        if len > 63 {
            return None;
        }
        let label = msg.get(at..at + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += len;
        if at > 12 + 255 {
            return None;
        }
    }
    let qtype = u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]);
    let qclass = u16::from_be_bytes([*msg.get(at + 2)?, *msg.get(at + 3)?]);
    Some(Question {
        name: labels.join("."),
        qtype,
        qclass,
        end: at + 4,
    })
}

fn header(query: &[u8], rcode: u8, answers: u16) -> Vec<u8> {
    let qflags = u16::from_be_bytes([query[2], query[3]]);
    let rd = qflags & 0x0100;
    // QR, RD as asked, RA: recursion is available (we relay).
    let flags: u16 = 0x8000 | rd | 0x0080 | rcode as u16;
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&query[0..2]);
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&answers.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out
}

/// A response to `query` with `ips` as A/AAAA records (those of the asked type).
pub fn answer(query: &[u8], q: &Question, ips: &[IpAddr], ttl: u32) -> Vec<u8> {
    let records: Vec<&IpAddr> = ips
        .iter()
        .filter(|ip| match q.qtype {
            TYPE_A => ip.is_ipv4(),
            TYPE_AAAA => ip.is_ipv6(),
            _ => false,
        })
        .collect();
    let mut out = header(query, RCODE_OK, records.len() as u16);
    out.extend_from_slice(&query[12..q.end]);
    for ip in records {
        out.extend_from_slice(&[0xc0, 0x0c]); // the question's name
        out.extend_from_slice(&q.qtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        match ip {
            IpAddr::V4(a) => {
                out.extend_from_slice(&4u16.to_be_bytes());
                out.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                out.extend_from_slice(&16u16.to_be_bytes());
                out.extend_from_slice(&a.octets());
            }
        }
    }
    out
}

/// A PTR response naming `name`.
pub fn answer_ptr(query: &[u8], q: &Question, name: &str, ttl: u32) -> Vec<u8> {
    let mut out = header(query, RCODE_OK, 1);
    out.extend_from_slice(&query[12..q.end]);
    out.extend_from_slice(&[0xc0, 0x0c]);
    out.extend_from_slice(&TYPE_PTR.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    let mut rdata = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let l = &label.as_bytes()[..label.len().min(63)];
        rdata.push(l.len() as u8);
        rdata.extend_from_slice(l);
    }
    rdata.push(0);
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(&rdata);
    out
}

/// A response with no records and `rcode`.
pub fn empty(query: &[u8], q: &Question, rcode: u8) -> Vec<u8> {
    let mut out = header(query, rcode, 0);
    out.extend_from_slice(&query[12..q.end]);
    out
}

/// The address a reverse name (`4.3.2.1.in-addr.arpa`) stands for.
pub fn reverse_ip(name: &str) -> Option<IpAddr> {
    if let Some(v4) = name.strip_suffix(".in-addr.arpa") {
        let mut o: Vec<u8> = v4
            .split('.')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        if o.len() != 4 {
            return None;
        }
        o.reverse();
        return Some(IpAddr::from([o[0], o[1], o[2], o[3]]));
    }
    let v6 = name.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<u8> = v6
        .split('.')
        .map(|p| u8::from_str_radix(p, 16).ok().filter(|_| p.len() == 1))
        .collect::<Option<_>>()?;
    if nibbles.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, pair) in nibbles.rchunks(2).enumerate() {
        bytes[i] = (pair[1] << 4) | pair[0];
    }
    Some(IpAddr::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `name` of `qtype`, as a stub resolver sends it.
    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn answers_a_records_only_for_a_queries() {
        let msg = query("Web.Example", TYPE_A);
        let q = parse_query(&msg).unwrap();
        assert_eq!(q.name, "web.example");
        let ips: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap(), "fd00::2".parse().unwrap()];
        let r = answer(&msg, &q, &ips, 600);
        assert_eq!(&r[0..2], &[0x12, 0x34], "same id");
        assert_eq!(r[2] & 0x80, 0x80, "a response");
        assert_eq!(r[3] & 0x0f, 0, "NOERROR");
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1, "one answer");
        assert_eq!(&r[r.len() - 4..], &[10, 0, 0, 2]);
        let msg6 = query("web", TYPE_AAAA);
        let q6 = parse_query(&msg6).unwrap();
        let r6 = answer(&msg6, &q6, &ips[..1], 600);
        assert_eq!(
            u16::from_be_bytes([r6[6], r6[7]]),
            0,
            "no AAAA for a v4-only name"
        );
    }

    #[test]
    fn rejects_what_is_not_a_plain_query() {
        assert!(parse_query(&[0; 5]).is_none());
        let mut resp = query("a", TYPE_A);
        resp[2] |= 0x80;
        assert!(parse_query(&resp).is_none());
        let mut truncated = query("abc", TYPE_A);
        truncated.truncate(15);
        assert!(parse_query(&truncated).is_none());
        let mut pointer = query("a", TYPE_A);
        pointer[12] = 0xc0;
        assert!(parse_query(&pointer).is_none());
    }

    #[test]
    fn nxdomain_and_ptr() {
        let msg = query("nope", TYPE_A);
        let q = parse_query(&msg).unwrap();
        let r = empty(&msg, &q, RCODE_NXDOMAIN);
        assert_eq!(r[3] & 0x0f, RCODE_NXDOMAIN);
        assert_eq!(
            reverse_ip("2.0.17.172.in-addr.arpa"),
            Some("172.17.0.2".parse().unwrap())
        );
        let v6 = "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa";
        assert_eq!(reverse_ip(v6), Some("fd00:1::2".parse().unwrap()));
        assert_eq!(reverse_ip("1.2.3.in-addr.arpa"), None);
        let pq = query("2.0.17.172.in-addr.arpa", TYPE_PTR);
        let q = parse_query(&pq).unwrap();
        let r = answer_ptr(&pq, &q, "web.net", 600);
        assert!(r.ends_with(&[3, b'w', b'e', b'b', 3, b'n', b'e', b't', 0]));
    }
}
