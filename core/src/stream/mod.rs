//! Streams: the OP's application streams and the exit's connections, each with its
//! stream-level flow-control windows and bounded buffers.

pub mod dir;

use alloc::collections::VecDeque;

use crate::Instant;
use crate::cells::relay::StreamId;
use crate::circuit::CircKey;
use crate::circuit::flow::{RecvWindow, SendWindow, WindowParams};

/// Stream-level flow control of one end.
#[derive(Debug, Clone)]
pub(crate) struct StreamFlow {
    pub send: SendWindow,
    pub recv: RecvWindow,
}

impl StreamFlow {
    pub fn new() -> Self {
        StreamFlow {
            send: SendWindow::new(WindowParams::STREAM),
            recv: RecvWindow::new(WindowParams::STREAM),
        }
    }
}

/// An application stream at the OP.
#[derive(Debug)]
pub(crate) struct ClientStream {
    pub circ: CircKey,
    pub id: StreamId,
    /// True once CONNECTED arrived.
    pub open: bool,
    pub flow: StreamFlow,
    /// Received bytes the application has not read yet; bounded by the receive window
    /// (at most 500 cells), since SENDMEs are only sent as the application reads.
    pub inbuf: VecDeque<u8>,
    pub readable_announced: bool,
    /// The application wrote more than the windows allowed: tell it when they open.
    pub want_writable: bool,
    /// The stream ended (END received or the circuit closed) with this reason; it is
    /// reported closed once the application has read what was received before.
    pub ended: Option<crate::cells::relay::EndReason>,
}

/// What an exit stream is connected to.
#[derive(Debug)]
pub(crate) enum ExitKind {
    /// A TCP connection the runtime carries.
    Tcp,
    /// The node's own directory function (BEGIN_DIR).
    Dir(dir::DirRequest),
}

/// A stream at the last hop of a relayed circuit.
#[derive(Debug)]
pub(crate) struct ExitStream {
    pub circ: CircKey,
    pub id: StreamId,
    pub kind: ExitKind,
    /// True once connected (CONNECTED sent).
    pub open: bool,
    pub deadline: Option<Instant>,
    pub flow: StreamFlow,
    /// Bytes from the destination not yet packaged into DATA cells.
    pub from_dest: VecDeque<u8>,
    /// Bytes for the destination not yet taken by the runtime.
    pub to_dest: VecDeque<u8>,
    pub transmit_announced: bool,
    /// The destination side finished: send END once `from_dest` is empty.
    pub dest_closed: bool,
}
