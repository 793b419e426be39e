//! A TLS stream over any async byte stream ([`Io`]; the runtime implements it for its
//! `TcpStream`): the handshake, reads, writes and close_notify. Timeouts belong to the caller (the runtime
//! wraps the handshake in a deadline), so this module needs no clock.

use crate::TlsError;
use crate::engine::{Engine, Progress, Side};
use alloc::sync::Arc;
use fata_net::NetError;
use rustls::client::UnbufferedClientConnection;
use rustls::server::UnbufferedServerConnection;
use rustls::{ClientConfig, ServerConfig};

/// An ordered, reliable byte stream in both directions.
#[allow(async_fn_in_trait)] // single-threaded executor: no Send bound wanted
pub trait Io {
    /// Reads at least one byte into `buf`, or returns 0 at the end of the stream.
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError>;
    /// Writes all of `buf`.
    async fn write_all(&mut self, buf: &[u8]) -> Result<(), NetError>;
    /// Waits until everything written has been acknowledged (or the stream fails).
    async fn flush(&mut self) -> Result<(), NetError>;
    /// Closes the sending direction.
    fn shutdown(&mut self);
}

/// A TLS connection over `S`: server side ([`TlsStream::server`]) or client side
/// ([`TlsStream::client`]).
pub struct TlsStream<S, C> {
    io: S,
    engine: Engine<C>,
}

/// The server side of a TLS connection.
pub type ServerStream<S> = TlsStream<S, UnbufferedServerConnection>;
/// The client side of a TLS connection.
pub type ClientStream<S> = TlsStream<S, UnbufferedClientConnection>;

impl<S: Io> ServerStream<S> {
    /// A server connection over `io`; call [`TlsStream::handshake`] next.
    pub fn server(io: S, config: Arc<ServerConfig>) -> Result<Self, TlsError> {
        let conn = UnbufferedServerConnection::new(config).map_err(TlsError::Tls)?;
        Ok(TlsStream {
            io,
            engine: Engine::new(conn),
        })
    }
}

impl<S: Io> ClientStream<S> {
    /// A client connection over `io` to the server called `name` (checked against its
    /// certificate); call [`TlsStream::handshake`] next.
    pub fn client(io: S, config: Arc<ClientConfig>, name: &str) -> Result<Self, TlsError> {
        let name = pki_types::ServerName::try_from(alloc::string::String::from(name))
            .map_err(|_| TlsError::BadServerName)?;
        let conn = UnbufferedClientConnection::new(config, name).map_err(TlsError::Tls)?;
        Ok(TlsStream {
            io,
            engine: Engine::new(conn),
        })
    }
}

impl<S: Io, C: Side> TlsStream<S, C> {
    /// The underlying stream (to mark a connection idle, read its addresses, ...).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// The rustls connection: negotiated version, cipher suite, ALPN protocol.
    pub fn connection(&mut self) -> &mut C {
        self.engine.connection()
    }

    /// Runs `process`; on an error, first sends whatever alert rustls queued for the peer.
    async fn process(&mut self, send: &mut &[u8], close: bool) -> Result<Progress, TlsError> {
        match self.engine.process(send, close) {
            Ok(p) => Ok(p),
            Err(e) => {
                let _ = self.send_outgoing().await;
                Err(TlsError::Tls(e))
            }
        }
    }

    async fn send_outgoing(&mut self) -> Result<(), TlsError> {
        if !self.engine.outgoing.is_empty() {
            let r = self.io.write_all(&self.engine.outgoing).await;
            self.engine.outgoing.clear();
            r.map_err(TlsError::Io)?;
        }
        Ok(())
    }

    /// Reads more ciphertext from the peer; `false` at the end of its stream.
    async fn fill(&mut self) -> Result<bool, TlsError> {
        let room = self.engine.incoming_room().min(8192);
        if room == 0 {
            return Err(TlsError::Tls(rustls::Error::General(
                "the peer's record does not fit the receive buffer".into(),
            )));
        }
        let start = self.engine.incoming.len();
        self.engine.incoming.resize(start + room, 0);
        let r = self.io.read(&mut self.engine.incoming[start..]).await;
        let n = *r.as_ref().unwrap_or(&0);
        self.engine.incoming.truncate(start + n);
        Ok(r.map_err(TlsError::Io)? > 0)
    }

    /// Completes the handshake. The caller bounds it with a deadline: a client that stalls
    /// mid-handshake otherwise holds the connection as long as TCP keeps it.
    pub async fn handshake(&mut self) -> Result<(), TlsError> {
        loop {
            let p = self.process(&mut &[][..], false).await?;
            let sent = self.send_outgoing().await;
            if self.engine.is_open() {
                // The handshake is complete even if what followed it (TLS 1.3 session
                // tickets) could not be sent because the client has already gone: that is a
                // failure of the connection, which the next read or write reports, not of
                // the handshake.
                return Ok(());
            }
            sent?;
            if p == Progress::Closed || !self.fill().await? {
                return Err(TlsError::HandshakeEof);
            }
        }
    }

    /// Reads decrypted bytes into `buf`; 0 when the peer has closed (with close_notify, or
    /// by closing TCP without one: HTTP/1.1 framing makes truncation visible to the
    /// application).
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, TlsError> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.engine.plain_available() > 0 {
                return Ok(self.engine.take_plain(buf));
            }
            if self.engine.peer_closed() {
                return Ok(0);
            }
            let p = self.process(&mut &[][..], false).await?;
            self.send_outgoing().await?;
            if self.engine.plain_available() > 0 || self.engine.peer_closed() {
                continue;
            }
            if p == Progress::Closed || !self.fill().await? {
                return Ok(0);
            }
        }
    }

    /// Encrypts and sends all of `buf`, one record (at most 16 KiB) at a time.
    pub async fn write_all(&mut self, mut buf: &[u8]) -> Result<(), TlsError> {
        while !buf.is_empty() {
            let before = buf.len();
            let p = self.process(&mut buf, false).await?;
            self.send_outgoing().await?;
            if p != Progress::Open || buf.len() == before {
                return Err(TlsError::NotOpen);
            }
        }
        Ok(())
    }

    /// Waits until everything sent has been acknowledged by the peer's TCP.
    pub async fn flush(&mut self) -> Result<(), TlsError> {
        self.io.flush().await.map_err(TlsError::Io)
    }

    /// Sends close_notify and closes the sending direction of the stream.
    pub async fn close(&mut self) -> Result<(), TlsError> {
        if self.engine.is_open() {
            self.process(&mut &[][..], true).await?;
            self.send_outgoing().await?;
        }
        self.io.shutdown();
        Ok(())
    }
}
