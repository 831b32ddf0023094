//! A minimal keep-alive HTTP/1.1 client: light enough that the load generator does not eat the
//! CPU the daemon is being measured on.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// One connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    token: String,
}

impl Conn {
    /// Connects.
    pub fn open(addr: &str, token: &str) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).ok();
        Conn {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
            token: token.to_owned(),
        }
    }

    /// Sends a request, reads the whole answer: (status, body).
    pub fn request(&mut self, method: &str, path: &str, body: &str) -> (u16, Vec<u8>) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.token,
            body.len()
        );
        self.writer.write_all(head.as_bytes()).expect("write");
        self.writer.write_all(body.as_bytes()).expect("write");
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).expect("status");
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("header");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut buf = vec![0; length];
        self.reader.read_exact(&mut buf).expect("body");
        (status, buf)
    }

    /// GET returning JSON.
    pub fn get_json(&mut self, path: &str) -> serde_json::Value {
        let (_, body) = self.request("GET", path, "");
        serde_json::from_slice(&body).unwrap_or_default()
    }

    /// Creates a task of `worker`/`action` with `body` (its data and options); its id.
    pub fn create(&mut self, worker: &str, action: &str, body: &str) -> i64 {
        let (status, answer) = self.request(
            "POST",
            &format!("/stask/workers/{worker}/tasks/{action}"),
            body,
        );
        assert_eq!(
            status,
            201,
            "create {worker}/{action}: {}",
            String::from_utf8_lossy(&answer)
        );
        let v: serde_json::Value = serde_json::from_slice(&answer).expect("create answer");
        v["id"].as_i64().expect("task id")
    }

    /// Polls task `id` every `every` until it is finished; its `task` object. Panics unless it
    /// completed (a failed figure is not a figure).
    pub fn wait_completed(&mut self, id: i64, every: std::time::Duration) -> serde_json::Value {
        loop {
            let task = self.get_json(&format!("/stask/tasks/{id}"))["task"].clone();
            match task["status"].as_str() {
                Some("completed") => return task,
                Some("failed" | "cancelled") => panic!("task {id} did not complete: {task}"),
                _ => std::thread::sleep(every),
            }
        }
    }
}
