//! naive.rs - the talk's first router, cut down to what rustc needs to refuse it.
//!
//!     rustc --edition 2021 workshop/rust/naive.rs
//!
//! No cargo and no crates: the `tokio` module below is a stand-in whose `spawn` has the real
//! bounds (`Send + 'static`), and those bounds are the whole story.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpStream;

mod tokio {
    /// tokio::spawn's signature. A runtime would poll `future` later, on any worker thread,
    /// possibly after the caller has returned: hence `'static` and `Send`.
    pub fn spawn<F>(future: F)
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        drop(future);
    }
}

struct Listener;

impl Listener {
    async fn accept(&self) -> TcpStream {
        unimplemented!("only the types matter here")
    }
}

pub struct Router {
    listener: Listener,
    connections: HashMap<u32, TcpStream>,
}

impl Router {
    /* slide: rust-naive */
    pub async fn handle_connections(&mut self) {
        loop {
            let socket = self.listener.accept().await;
            tokio::spawn(async move {
                self.handle_connection(socket).await;
            });
        }
    }
    /* end slide */

    async fn handle_connection(&mut self, socket: TcpStream) {
        let id = self.connections.len() as u32 + 1;
        self.connections.insert(id, socket);
    }
}

fn main() {}
