//! The one frame format, for the std client and the tokio server alike:
//!
//! ```text
//! u32 LE  body length (everything after this field), at most MAX_FRAME
//! u32 LE  protocol version
//! u8      length of the binary version, then that many bytes (e.g. "0.1.0")
//! ...     bincode 2 payload (serde, standard config)
//! ```
//!
//! The header is readable by every version, so a client can tell a daemon of another version
//! from its reply without decoding the payload.

use std::io::{self, Read, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bumped whenever the payload encoding changes incompatibly.
pub const PROTOCOL_VERSION: u32 = 1;
/// This binary's version, sent in every frame.
pub const BINARY_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Largest body accepted: room for compile artifacts, never an unbounded allocation.
pub const MAX_FRAME: u32 = 256 << 20;
/// Bytes reserved for a body before any arrive; it grows with what the peer really sends.
pub const INITIAL_BODY: usize = 64 << 10;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed or closed.
    #[error("connection: {0}")]
    Io(#[from] io::Error),
    /// The length field exceeds [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(u32),
    /// The header is cut short or inconsistent.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// The payload is not a valid message.
    #[error("undecodable payload: {0}")]
    Decode(String),
}

/// A frame read off the wire, payload not yet decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The sender's protocol version.
    pub protocol: u32,
    /// The sender's binary version.
    pub version: String,
    /// The bincode payload.
    pub payload: Vec<u8>,
}

impl Frame {
    /// True when the sender is this very version of zccache.
    pub fn is_same_version(&self) -> bool {
        self.protocol == PROTOCOL_VERSION && self.version == BINARY_VERSION
    }

    /// Decodes the payload.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, FrameError> {
        let config = bincode::config::standard().with_limit::<{ MAX_FRAME as usize }>();
        match bincode::serde::decode_from_slice(&self.payload, config) {
            Ok((value, used)) if used == self.payload.len() => Ok(value),
            Ok(_) => Err(FrameError::Decode("trailing bytes".to_string())),
            Err(e) => Err(FrameError::Decode(e.to_string())),
        }
    }

    /// Parses a body (the bytes after the length field).
    pub fn from_body(body: Vec<u8>) -> Result<Frame, FrameError> {
        let header = body.get(..5).ok_or(FrameError::Malformed("short header"))?;
        let protocol = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let vlen = usize::from(header[4]);
        let version = body
            .get(5..5 + vlen)
            .ok_or(FrameError::Malformed("short version"))?;
        let version = String::from_utf8_lossy(version).into_owned();
        Ok(Frame {
            protocol,
            version,
            payload: body[5 + vlen..].to_vec(),
        })
    }
}

/// Encodes `message` as a complete frame of this version.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let payload = bincode::serde::encode_to_vec(message, bincode::config::standard())
        .map_err(|e| FrameError::Decode(e.to_string()))?;
    let version = BINARY_VERSION.as_bytes();
    let body_len = 4 + 1 + version.len() + payload.len();
    let body_len = u32::try_from(body_len)
        .ok()
        .filter(|&n| n <= MAX_FRAME)
        .ok_or(FrameError::TooLarge(u32::MAX))?;
    let mut frame = Vec::with_capacity(4 + body_len as usize);
    frame.extend_from_slice(&body_len.to_le_bytes());
    frame.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    frame.push(version.len() as u8);
    frame.extend_from_slice(version);
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// Checks a length field read off the wire.
pub fn body_len(prefix: [u8; 4]) -> Result<usize, FrameError> {
    match u32::from_le_bytes(prefix) {
        n if n > MAX_FRAME => Err(FrameError::TooLarge(n)),
        n if n < 5 => Err(FrameError::Malformed("body shorter than its header")),
        n => Ok(n as usize),
    }
}

/// Writes one frame (blocking).
pub fn write_frame<T: Serialize>(writer: &mut impl Write, message: &T) -> Result<(), FrameError> {
    writer.write_all(&encode(message)?)?;
    writer.flush()?;
    Ok(())
}

/// Reads one frame (blocking).
pub fn read_frame(reader: &mut impl Read) -> Result<Frame, FrameError> {
    let mut prefix = [0u8; 4];
    reader.read_exact(&mut prefix)?;
    let len = body_len(prefix)?;
    let mut body = Vec::with_capacity(len.min(INITIAL_BODY));
    reader.take(len as u64).read_to_end(&mut body)?;
    if body.len() < len {
        return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    Frame::from_body(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile_cache::artifact::Artifact;
    use crate::daemon::protocol::{
        Blob, NormalizedPath, Request, Response, RunCheckAnswer, RunCheckSpec, WatchSet,
    };

    fn path(p: &str) -> NormalizedPath {
        NormalizedPath::new(std::path::Path::new("/"), std::path::Path::new(p))
    }

    /// One value of every variant, in contract order.
    fn every_request() -> Vec<Request> {
        let p = path("/x");
        let run_check = RunCheckSpec {
            cache_file: p.clone(),
            cache_type: "hash".into(),
            root: p.clone(),
            extensions: vec![],
            include_globs: vec![],
            exclude: vec![],
            extra_parts: vec![("command".into(), "00".into())],
            dry_run: true,
        };
        vec![
            Request::Ping,
            Request::Shutdown,
            Request::Status,
            Request::Lookup {
                cache_key: "k".into(),
            },
            Request::Store {
                cache_key: "k".into(),
                artifact: Artifact {
                    outputs: vec![("a.o".into(), vec![1])],
                    stdout: vec![],
                    stderr: vec![2],
                    exit_code: 0,
                },
            },
            Request::SessionStart {
                client_pid: 1,
                working_dir: p.clone(),
                log_file: None,
                track_stats: true,
                journal_path: Some(path("/j.jsonl")),
                profile: false,
            },
            Request::Compile {
                session_id: "s".into(),
                args: vec!["-c".into()],
                cwd: p.clone(),
                compiler: p.clone(),
                env: None,
                stdin: vec![],
            },
            Request::SessionEnd {
                session_id: "s".into(),
            },
            Request::Clear,
            Request::CompileEphemeral {
                client_pid: 1,
                working_dir: p.clone(),
                compiler: p.clone(),
                args: vec![],
                cwd: p.clone(),
                env: Some(vec![("A".into(), "b".into())]),
                stdin: vec![0],
            },
            Request::LinkEphemeral {
                client_pid: 1,
                tool: p.clone(),
                args: vec![],
                cwd: p.clone(),
                env: None,
            },
            Request::SessionStats {
                session_id: "s".into(),
            },
            Request::FingerprintCheck {
                cache_file: p.clone(),
                cache_type: "two-layer".into(),
                root: p.clone(),
                extensions: vec!["rs".into()],
                include_globs: vec![],
                exclude: vec![],
            },
            Request::FingerprintMarkSuccess {
                cache_file: p.clone(),
            },
            Request::FingerprintMarkFailure {
                cache_file: p.clone(),
            },
            Request::FingerprintInvalidate {
                cache_file: p.clone(),
            },
            Request::ListRustArtifacts,
        ]
        .into_iter()
        .chain(appended_requests(p, run_check))
        .collect()
    }

    /// The variants appended after the contract's.
    fn appended_requests(p: NormalizedPath, run_check: RunCheckSpec) -> Vec<Request> {
        vec![
            Request::RunCheck(run_check.clone()),
            Request::RunRecord {
                cache_file: p,
                pending_id: "5eed-7".into(),
                key: "00".into(),
                success: true,
            },
            Request::RunCheckBatch(vec![run_check.clone()]),
            Request::CompileDone {
                token: 7,
                exit_code: 0,
                stdout: vec![],
                stderr: b"warning".to_vec(),
                session_id: None,
            },
            Request::WhyOutput {
                output: path("/b/a.o"),
            },
            Request::Watch {
                settle_ms: 20,
                client_pid: 7,
                sets: vec![WatchSet {
                    label: "lint".into(),
                    root: path("/r"),
                    extensions: vec!["rs".into()],
                    include_globs: vec![],
                    exclude: vec!["dist".into()],
                    state_file: Some(path("/r/.zccache/run/lint.json")),
                    file: None,
                }],
            },
            Request::PerFileCheck {
                task: run_check.clone(),
                set: run_check,
                passed: vec![("00".into(), "11".into())],
            },
        ]
    }

    #[test]
    fn every_variant_keeps_its_index() {
        let header = 4 + 4 + 1 + BINARY_VERSION.len();
        for (index, request) in every_request().into_iter().enumerate() {
            let bytes = encode(&request).unwrap();
            assert_eq!(usize::from(bytes[header]), index, "{request:?} moved");
        }
    }

    #[test]
    fn every_variant_round_trips() {
        for request in every_request() {
            let bytes = encode(&request).unwrap();
            let frame = read_frame(&mut bytes.as_slice()).unwrap();
            assert!(frame.is_same_version());
            assert_eq!(frame.decode::<Request>().unwrap(), request);
        }
    }

    #[test]
    fn a_per_file_answer_with_its_table_round_trips() {
        let response = Response::PerFileChecked {
            task: RunCheckAnswer::Failed {
                message: "m".into(),
            },
            set: RunCheckAnswer::Failed {
                message: "n".into(),
            },
            table: Some(Blob(vec![0xff; 300])),
        };
        let bytes = encode(&response).unwrap();
        let frame = read_frame(&mut bytes.as_slice()).unwrap();
        assert_eq!(frame.decode::<Response>().unwrap(), response);
    }

    #[test]
    fn ping_frame_golden_bytes() {
        let bytes = encode(&Request::Ping).unwrap();
        let v = BINARY_VERSION.as_bytes();
        let mut want = ((4 + 1 + v.len() + 1) as u32).to_le_bytes().to_vec();
        want.extend_from_slice(&[1, 0, 0, 0, v.len() as u8]);
        want.extend_from_slice(v);
        want.push(0);
        assert_eq!(bytes, want);
    }

    #[test]
    fn oversized_and_truncated_frames_are_refused() {
        let huge = (MAX_FRAME + 1).to_le_bytes();
        assert!(matches!(
            read_frame(&mut huge.as_slice()),
            Err(FrameError::TooLarge(_))
        ));
        let mut cut = encode(&Request::Status).unwrap();
        cut.truncate(cut.len() - 1);
        assert!(matches!(
            read_frame(&mut cut.as_slice()),
            Err(FrameError::Io(_))
        ));
        let garbage = [9u8, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        let frame = read_frame(&mut garbage.as_slice()).unwrap();
        assert!(frame.decode::<Request>().is_err());
    }
}
