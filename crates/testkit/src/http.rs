//! A minimal HTTP/1.1 client for the emulator's admin API and the operator's admin port.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The body as `T`, or a panic naming what came back.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("unexpected answer ({e}): {}", self.body))
    }
}

/// `url` is `http://HOST:PORT`; `path` starts with `/`.
pub async fn request(
    method: &str,
    url: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<Reply> {
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(authority).await?;
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(Reply {
        status,
        body: body.to_string(),
    })
}

pub async fn get(url: &str, path: &str) -> Reply {
    request("GET", url, path, None)
        .await
        .unwrap_or_else(|e| panic!("GET {url}{path}: {e}"))
}

/// POSTs `body` as JSON and expects a 2xx answer.
pub async fn post(url: &str, path: &str, body: &impl serde::Serialize) -> Reply {
    let body = serde_json::to_string(body).expect("a JSON body");
    let reply = request("POST", url, path, Some(&body))
        .await
        .unwrap_or_else(|e| panic!("POST {url}{path}: {e}"));
    assert!(
        reply.status < 300,
        "POST {path} answered {}: {}",
        reply.status,
        reply.body
    );
    reply
}

pub async fn delete(url: &str, path: &str) -> Reply {
    request("DELETE", url, path, None)
        .await
        .unwrap_or_else(|e| panic!("DELETE {url}{path}: {e}"))
}
