//! How a session ends: [`Closing`] names the close code and reason, and [`close_ws`]
//! sends it and waits for the peer's answer, each step bounded in time.
//!
//! Codes are the stable ones of `error::close` (`docs/PROTOCOL.md`). A reason never
//! echoes the peer's text and is clipped to what a close frame can carry, since an
//! over-long reason would make tungstenite refuse the close altogether.

use super::tls::Ws;
use crate::error::close;
use futures_util::StreamExt;
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// Why the loop stopped, and the close frame to send (if the socket still works).
pub(super) struct Closing {
    pub(super) code: u16,
    pub(super) reason: String,
}

impl Closing {
    pub(super) fn new(code: u16, reason: impl Into<String>) -> Self {
        Closing {
            code,
            reason: reason.into(),
        }
    }
}

/// The longest reason a WebSocket close frame may carry (125 - 2 bytes of code).
const MAX_CLOSE_REASON: usize = 123;

/// `reason` cut to at most [`MAX_CLOSE_REASON`] bytes at a char boundary.
fn clip_reason(mut reason: String) -> String {
    if reason.len() > MAX_CLOSE_REASON {
        let mut end = MAX_CLOSE_REASON;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

/// How long a close frame may take to write when the socket is not known to be full.
pub(super) const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long to wait for the peer's answering close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// Sends `c` within [`CLOSE_WRITE_TIMEOUT`], then waits for the peer's close.
pub(super) async fn close_ws(ws: &mut Ws, c: Closing) {
    close_ws_within(ws, c, CLOSE_WRITE_TIMEOUT).await;
}

/// Sends the close frame (the peer has `patience` to read its way to it), then waits
/// a little for the peer's answering close.
pub(super) async fn close_ws_within(ws: &mut Ws, c: Closing, patience: Duration) {
    let frame = CloseFrame {
        code: CloseCode::from(c.code),
        // Last guard: an over-long reason would make tungstenite refuse the close.
        reason: clip_reason(c.reason).into(),
    };
    match tokio::time::timeout(patience, ws.close(Some(frame))).await {
        Ok(Ok(())) => {}
        _ => return,
    }
    // Wait for the peer's close (reading and discarding), so that it is a clean close:
    // dropping the socket while the peer still sends would reset the connection and
    // discard what the peer had not read yet, close frame included.
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// The close that a failed socket read calls for.
pub(super) fn read_error(e: tokio_tungstenite::tungstenite::Error) -> Closing {
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error};
    match e {
        Error::Capacity(CapacityError::MessageTooLong { .. }) => {
            Closing::new(close::TOO_BIG, "frame exceeds the hard read limit")
        }
        Error::Utf8(_) => Closing::new(close::INVALID_PAYLOAD, "invalid UTF-8"),
        Error::Protocol(_) => Closing::new(close::PROTOCOL_ERROR, "protocol error"),
        _ => Closing::new(close::NORMAL, "read failed"),
    }
}
