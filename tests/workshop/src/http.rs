//! The HTTP/1.1 the stand-in speaks: one request at a time from a connection (keep-alive unless
//! the client says `Connection: close` or speaks HTTP/1.0), bodies by `Content-Length` or
//! `Transfer-Encoding: chunked`, answers always with `Content-Length`.

use std::io::{self, BufRead, Write};

/// Requests larger than this (line, headers or body) are refused: the stand-in is not a target.
const MAX_REQUEST: usize = 1 << 20;

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The query string (after `?`), empty when there is none.
    pub query: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the connection stays open after the answer.
    pub keep_alive: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads the next request; `Ok(None)` when the client closed the connection between requests.
/// A request with `Expect: 100-continue` (curl sends it with bodies over 1 KiB) gets its
/// `100 Continue` on `out` before the body is read, so the client does not wait for it.
pub fn read_request(
    reader: &mut impl BufRead,
    out: &mut impl Write,
) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut words = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (words.next(), words.next(), words.next())
    else {
        return Err(bad(format!("bad request line {line:?}")));
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut request = Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
        keep_alive: version == "HTTP/1.1",
    };
    let mut total = line.len();
    loop {
        let mut header = String::new();
        total += reader.read_line(&mut header)?;
        if total > MAX_REQUEST {
            return Err(bad("request headers too large".into()));
        }
        let header = header.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim().to_owned();
            if name == "connection" {
                request.keep_alive = match value.to_ascii_lowercase().as_str() {
                    "close" => false,
                    "keep-alive" => true,
                    _ => request.keep_alive,
                };
            }
            request.headers.push((name, value));
        }
    }
    let expects_continue = request
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if expects_continue && version == "HTTP/1.1" {
        out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        out.flush()?;
    }
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if chunked {
        request.body = read_chunked(reader)?;
    } else if let Some(length) = request.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| bad(format!("bad Content-Length {length:?}")))?;
        if length > MAX_REQUEST {
            return Err(bad("request body too large".into()));
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        request.body = body;
    }
    Ok(Some(request))
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size = size_line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| bad(format!("bad chunk size {size_line:?}")))?;
        if body.len() + size > MAX_REQUEST {
            return Err(bad("request body too large".into()));
        }
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                let mut trailer = String::new();
                if reader.read_line(&mut trailer)? == 0 || trailer.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = String::new();
        reader.read_line(&mut crlf)?;
    }
}

fn bad(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Writes one answer. `body` is sent unless the request was `HEAD` (`head_only`).
pub fn respond(
    out: &mut impl Write,
    status: u16,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
    head_only: bool,
) -> io::Result<()> {
    let reason = reason(status);
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: {connection}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        head.extend_from_slice(body);
    }
    out.write_all(&head)?;
    out.flush()
}

/// The reason phrase of a status the stand-in sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

/// Decodes an `application/x-www-form-urlencoded` text (a body or a query) into its pairs.
pub fn parse_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// `%XX` and `+` decoding; a broken escape is kept as it is.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    #[test]
    fn parses_form_bodies_with_brackets_escaped_or_not() {
        let form = parse_form("itemcount=2&publishedfileids%5B0%5D=1&publishedfileids[1]=2&x=a+b");
        assert_eq!(form[1], ("publishedfileids[0]".into(), "1".into()));
        assert_eq!(form[2], ("publishedfileids[1]".into(), "2".into()));
        assert_eq!(form[3], ("x".into(), "a b".into()));
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn answers_expect_100_continue_before_the_body() {
        let wire = "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok";
        let mut out = Vec::new();
        let request = read_request(&mut BufReader::new(wire.as_bytes()), &mut out);
        assert_eq!(request.unwrap().unwrap().body, b"ok");
        assert_eq!(out, b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    #[test]
    fn reads_keep_alive_requests_with_length_and_chunked_bodies() {
        let wire = "POST /a?q=1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc\
                    POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                    2\r\nxy\r\n1\r\nz\r\n0\r\n\r\n";
        let mut reader = BufReader::new(wire.as_bytes());
        let mut out = Vec::new();
        let first = read_request(&mut reader, &mut out).unwrap().unwrap();
        assert_eq!((first.path.as_str(), first.query.as_str()), ("/a", "q=1"));
        assert_eq!(first.body, b"abc");
        assert!(first.keep_alive);
        let second = read_request(&mut reader, &mut out).unwrap().unwrap();
        assert_eq!(second.body, b"xyz");
        assert!(!second.keep_alive);
        assert!(read_request(&mut reader, &mut out).unwrap().is_none());
        assert!(out.is_empty(), "no 100 Continue unless asked");
    }
}
