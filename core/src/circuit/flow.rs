//! Tor's window-based flow control (tor-spec "Flow control"), for circuits (1000/100) and
//! streams (500/50), and the authenticated SENDME v1 tags of proposal 289.
//!
//! A sender may have at most `start` DATA cells unacknowledged; each SENDME opens the
//! window by `increment`. A receiver acknowledges every `increment` cells. Both sides are
//! bounded: a SENDME that would open the window past its start, or a DATA cell arriving
//! on an exhausted window, is a protocol violation.

use heapless::Deque;
use subtle::ConstantTimeEq;

/// Window parameters of one level of flow control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowParams {
    /// The window's initial (and maximum) size, in cells.
    pub start: u16,
    /// How many cells one SENDME acknowledges.
    pub increment: u16,
}

impl WindowParams {
    /// Circuit-level windows: 1000 cells, SENDME every 100.
    pub const CIRCUIT: WindowParams = WindowParams {
        start: 1000,
        increment: 100,
    };
    /// Stream-level windows: 500 cells, SENDME every 50.
    pub const STREAM: WindowParams = WindowParams {
        start: 500,
        increment: 50,
    };
}

/// A flow-control violation by the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowError {
    /// A SENDME arrived that would open the window beyond its start.
    UnexpectedSendme,
    /// A DATA cell arrived although the window was exhausted.
    WindowExceeded,
    /// An authenticated SENDME carried the wrong tag, or none was expected.
    BadSendmeTag,
}

impl core::fmt::Display for FlowError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            FlowError::UnexpectedSendme => "SENDME would open the window past its start",
            FlowError::WindowExceeded => "DATA beyond the flow-control window",
            FlowError::BadSendmeTag => "authenticated SENDME with a wrong or unexpected tag",
        })
    }
}

/// The sending side's ("package") window.
#[derive(Debug, Clone)]
pub struct SendWindow {
    params: WindowParams,
    window: u16,
}

impl SendWindow {
    /// A full window.
    pub fn new(params: WindowParams) -> Self {
        SendWindow {
            params,
            window: params.start,
        }
    }

    /// Cells that may be sent now.
    pub fn available(&self) -> u16 {
        self.window
    }

    /// Account for one DATA cell about to be sent. Returns `Some(true)` when the cell's
    /// SENDME tag must be remembered (it is the last cell of an increment, which the
    /// peer's next SENDME will acknowledge), `Some(false)` otherwise, and `None` (sending
    /// nothing) when the window is exhausted.
    pub fn take(&mut self) -> Option<bool> {
        if self.window == 0 {
            return None;
        }
        // Tor records the tag of the cell sent while window-1 is a multiple of the
        // increment, never for the very first cell of a fresh window.
        let record = self.window != self.params.start
            && (self.window - 1).is_multiple_of(self.params.increment);
        self.window -= 1;
        Some(record)
    }

    /// A SENDME arrived: open the window by one increment.
    pub fn on_sendme(&mut self) -> Result<(), FlowError> {
        let opened = self.window.checked_add(self.params.increment);
        match opened {
            Some(w) if w <= self.params.start => {
                self.window = w;
                Ok(())
            }
            _ => Err(FlowError::UnexpectedSendme),
        }
    }
}

/// The receiving side's ("deliver") window.
#[derive(Debug, Clone)]
pub struct RecvWindow {
    params: WindowParams,
    window: u16,
}

impl RecvWindow {
    /// A full window.
    pub fn new(params: WindowParams) -> Self {
        RecvWindow {
            params,
            window: params.start,
        }
    }

    /// Cells the peer may still send before it must wait for a SENDME.
    pub fn available(&self) -> u16 {
        self.window
    }

    /// Account for one received DATA cell. Fails when the peer sent beyond the window.
    pub fn on_data(&mut self) -> Result<(), FlowError> {
        self.window = self
            .window
            .checked_sub(1)
            .ok_or(FlowError::WindowExceeded)?;
        Ok(())
    }

    /// True when an increment of cells has been received since the last SENDME. A circuit
    /// sends its SENDME at once; a stream waits until the application has consumed the
    /// data, which is what bounds the buffered bytes.
    pub fn sendme_due(&self) -> bool {
        self.window <= self.params.start - self.params.increment
    }

    /// A SENDME was sent: the peer may send one more increment.
    pub fn sendme_sent(&mut self) {
        self.window = self
            .window
            .saturating_add(self.params.increment)
            .min(self.params.start);
    }
}

/// Length of a SENDME v1 tag: a SHA-1 running digest.
pub const SENDME_TAG_LEN: usize = 20;

/// The tags a circuit sender expects back in authenticated SENDMEs, oldest first.
///
/// At most `start / increment` (10 for circuits) can be outstanding, so the queue has a
/// fixed capacity and never allocates.
#[derive(Debug, Clone, Default)]
pub struct SendmeTags {
    expected: Deque<[u8; SENDME_TAG_LEN], 16>,
}

impl SendmeTags {
    /// No tags outstanding.
    pub fn new() -> Self {
        Self::default()
    }

    /// Remember the tag of a cell whose SENDME will come back. Fails only when more tags
    /// are outstanding than any window allows, which the window prevents.
    pub fn record(&mut self, tag: [u8; SENDME_TAG_LEN]) -> Result<(), FlowError> {
        self.expected
            .push_back(tag)
            .map_err(|_| FlowError::UnexpectedSendme)
    }

    /// Check a received SENDME v1 tag against the oldest expected one, in constant time.
    pub fn check(&mut self, tag: &[u8; SENDME_TAG_LEN]) -> Result<(), FlowError> {
        let expected = self.expected.pop_front().ok_or(FlowError::BadSendmeTag)?;
        if bool::from(expected.ct_eq(tag)) {
            Ok(())
        } else {
            Err(FlowError::BadSendmeTag)
        }
    }

    /// Drop the oldest expected tag (for a SENDME without a tag, where v0 is allowed).
    pub fn skip(&mut self) -> Result<(), FlowError> {
        self.expected
            .pop_front()
            .map(|_| ())
            .ok_or(FlowError::UnexpectedSendme)
    }

    /// How many tags are outstanding.
    pub fn len(&self) -> usize {
        self.expected.len()
    }

    /// True when no SENDME is expected.
    pub fn is_empty(&self) -> bool {
        self.expected.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn circuit_sender_records_every_hundredth_cell() {
        let mut w = SendWindow::new(WindowParams::CIRCUIT);
        let which: Vec<u32> = (1..=1000).filter(|_| w.take().unwrap()).collect();
        assert_eq!(which, [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]);
        assert_eq!(w.take(), None, "window exhausted after 1000 cells");
    }

    #[test]
    fn receiver_acknowledges_every_increment() {
        let mut r = RecvWindow::new(WindowParams::STREAM);
        let mut acks = Vec::new();
        for i in 1..=500u32 {
            r.on_data().unwrap();
            if r.sendme_due() {
                r.sendme_sent();
                acks.push(i);
            }
        }
        assert_eq!(acks.len(), 10);
        assert_eq!(acks[0], 50);
        assert_eq!(r.available(), 500);
    }

    #[test]
    fn window_bounds_are_enforced() {
        let mut s = SendWindow::new(WindowParams::STREAM);
        assert_eq!(s.on_sendme(), Err(FlowError::UnexpectedSendme));
        for _ in 0..50 {
            s.take().unwrap();
        }
        assert_eq!(s.on_sendme(), Ok(()));
        assert_eq!(s.available(), 500);

        // A receiver that withholds SENDMEs (its application is not reading) sees a peer
        // that keeps sending overrun the window.
        let mut r = RecvWindow::new(WindowParams::STREAM);
        for _ in 0..500 {
            r.on_data().unwrap();
        }
        assert_eq!(r.on_data(), Err(FlowError::WindowExceeded));
    }

    #[test]
    fn sendme_tags_are_checked_in_order() {
        let mut t = SendmeTags::new();
        t.record([1; 20]).unwrap();
        t.record([2; 20]).unwrap();
        assert_eq!(t.check(&[2; 20]), Err(FlowError::BadSendmeTag));
        assert_eq!(t.check(&[2; 20]), Ok(()));
        assert_eq!(t.check(&[3; 20]), Err(FlowError::BadSendmeTag));
    }

    #[test]
    fn sender_never_exceeds_window_under_any_sendme_sequence() {
        bolero::check!()
            .with_type::<alloc::vec::Vec<bool>>()
            .for_each(|ops| {
                let mut s = SendWindow::new(WindowParams::CIRCUIT);
                // Cells sent and not yet acknowledged never exceed the window's start.
                let mut unacked: u32 = 0;
                for &send in ops {
                    if send {
                        if s.take().is_some() {
                            unacked += 1;
                        }
                    } else if s.on_sendme().is_ok() {
                        unacked -= 100;
                    }
                    assert!(unacked <= 1000);
                    assert_eq!(unacked + u32::from(s.available()), 1000);
                }
            });
    }
}
