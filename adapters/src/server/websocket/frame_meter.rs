//! Follows the frames of a client's byte stream (RFC 6455 section 5.2) without
//! keeping them: just enough to know where each message starts and ends and how
//! much payload it declares, however it is fragmented. tungstenite does the real
//! parsing; this only measures, so the limits can be enforced before tungstenite
//! buffers anything.

/// Largest frame header: 2 bytes, 8 of extended length, 4 of mask.
const MAX_HEADER: usize = 14;

/// What the bytes fed so far revealed, in stream order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameEvent {
    /// The header of a data frame (text, binary or continuation) is complete.
    /// `starts_message`: no message was in progress, so this frame begins one.
    DataFrame { payload: u64, starts_message: bool },
    /// The header of a control frame (close, ping, pong) is complete.
    ControlFrame { payload: u64 },
    /// The last byte of a message's final frame went by.
    MessageEnd,
}

/// Where the meter is in the stream.
#[derive(Debug, Clone, Copy)]
enum Stage {
    /// Reading a header: the bytes so far.
    Header {
        bytes: [u8; MAX_HEADER],
        have: usize,
    },
    /// Skipping a payload: bytes left, and whether the frame ends a message.
    Payload { remaining: u64, ends_message: bool },
}

/// The frame-following state of one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameMeter {
    stage: Stage,
    /// A data message has started and its final frame has not ended yet.
    in_message: bool,
}

impl Default for FrameMeter {
    fn default() -> Self {
        Self {
            stage: Stage::Header {
                bytes: [0; MAX_HEADER],
                have: 0,
            },
            in_message: false,
        }
    }
}

impl FrameMeter {
    /// Feeds the next bytes of the stream, calling `on_event` for each event in
    /// order. Stops at the first `Err` from `on_event` and returns it.
    pub fn feed<E>(
        &mut self,
        mut bytes: &[u8],
        mut on_event: impl FnMut(FrameEvent) -> Result<(), E>,
    ) -> Result<(), E> {
        while !bytes.is_empty() {
            match &mut self.stage {
                Stage::Header {
                    bytes: header,
                    have,
                } => {
                    header[*have] = bytes[0];
                    *have += 1;
                    bytes = &bytes[1..];
                    if let Some((fin, opcode, payload)) = parse_header(&header[..*have]) {
                        let is_data = opcode < 0x8;
                        let event = if is_data {
                            let starts_message = !self.in_message;
                            self.in_message = true;
                            FrameEvent::DataFrame {
                                payload,
                                starts_message,
                            }
                        } else {
                            FrameEvent::ControlFrame { payload }
                        };
                        self.stage = Stage::Payload {
                            remaining: payload,
                            ends_message: is_data && fin,
                        };
                        on_event(event)?;
                        self.finish_frame_if_done(&mut on_event)?;
                    }
                }
                Stage::Payload { remaining, .. } => {
                    let take = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    *remaining -= take as u64;
                    bytes = &bytes[take..];
                    self.finish_frame_if_done(&mut on_event)?;
                }
            }
        }
        Ok(())
    }

    fn finish_frame_if_done<E>(
        &mut self,
        on_event: &mut impl FnMut(FrameEvent) -> Result<(), E>,
    ) -> Result<(), E> {
        if let Stage::Payload {
            remaining: 0,
            ends_message,
        } = self.stage
        {
            self.stage = Stage::Header {
                bytes: [0; MAX_HEADER],
                have: 0,
            };
            if ends_message {
                self.in_message = false;
                on_event(FrameEvent::MessageEnd)?;
            }
        }
        Ok(())
    }
}

/// `(fin, opcode, payload length)` once `header` holds a complete header.
fn parse_header(header: &[u8]) -> Option<(bool, u8, u64)> {
    let [first, second, rest @ ..] = header else {
        return None;
    };
    let extended = match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    if rest.len() < extended + mask {
        return None;
    }
    let payload = match extended {
        0 => u64::from(second & 0x7f),
        _ => rest[..extended]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
    };
    Some((first & 0x80 != 0, first & 0x0f, payload))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A masked client frame.
    pub(crate) fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![u8::from(fin) << 7 | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&[1, 2, 3, 4]);
        out.extend(
            payload
                .iter()
                .zip([1u8, 2, 3, 4].iter().cycle())
                .map(|(b, m)| b ^ m),
        );
        out
    }

    fn events_of(stream: &[u8], chunk: usize) -> Vec<FrameEvent> {
        let mut meter = FrameMeter::default();
        let mut events = Vec::new();
        for piece in stream.chunks(chunk) {
            meter
                .feed::<()>(piece, |e| {
                    events.push(e);
                    Ok(())
                })
                .unwrap();
        }
        events
    }

    #[test]
    fn a_fragmented_message_with_a_ping_in_the_middle() {
        let mut stream = frame(false, 0x1, b"ab");
        stream.extend(frame(true, 0x9, b"p"));
        stream.extend(frame(false, 0x0, b""));
        stream.extend(frame(true, 0x0, &[b'c'; 300]));
        stream.extend(frame(true, 0x1, &[b'd'; 70_000]));
        let expected = vec![
            FrameEvent::DataFrame {
                payload: 2,
                starts_message: true,
            },
            FrameEvent::ControlFrame { payload: 1 },
            FrameEvent::DataFrame {
                payload: 0,
                starts_message: false,
            },
            FrameEvent::DataFrame {
                payload: 300,
                starts_message: false,
            },
            FrameEvent::MessageEnd,
            FrameEvent::DataFrame {
                payload: 70_000,
                starts_message: true,
            },
            FrameEvent::MessageEnd,
        ];
        for chunk in [1, 2, 3, 7, 1024, stream.len()] {
            assert_eq!(events_of(&stream, chunk), expected, "chunks of {chunk}");
        }
    }

    #[test]
    fn a_header_is_reported_before_its_payload_arrives() {
        let whole = frame(true, 0x1, &[0u8; 1 << 20]);
        let mut meter = FrameMeter::default();
        let mut events = Vec::new();
        meter
            .feed::<()>(&whole[..14], |e| {
                events.push(e);
                Ok(())
            })
            .unwrap();
        assert_eq!(
            events,
            [FrameEvent::DataFrame {
                payload: 1 << 20,
                starts_message: true
            }]
        );
        assert!(meter.in_message);
    }

    #[test]
    fn an_error_from_the_callback_stops_the_feed() {
        let stream = [frame(true, 0x1, b"a"), frame(true, 0x1, b"b")].concat();
        let mut meter = FrameMeter::default();
        let mut seen = 0;
        let outcome = meter.feed(&stream, |_| {
            seen += 1;
            if seen == 2 { Err("stop") } else { Ok(()) }
        });
        assert_eq!(outcome, Err("stop"));
        assert_eq!(seen, 2);
    }
}
