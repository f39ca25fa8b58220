//! What crosses Redis between nodes: commands to the leader's engine and relay, and items for another node's sockets.
//!
//! The commands are the core's own ([`EngineCommand`], [`RelayCommand`]), on the [`Remote`] side:
//! a socket travels as the sending node's socket id, a reply channel as a request id.
//!
//! **Protocol version.** Every entry carries the version of what it holds ([`PROTOCOL`]), so that
//! nodes of two releases side by side (a rolling upgrade) understand each other or refuse each
//! other clearly, never misread: a release that changes what crosses Redis raises it. An entry's
//! outer fields are the same in every version: a command's `v`, `id`, `from` and `replies` (the
//! requests its node waits for), a node entry's `v` and `refused`. A node reads those first and the
//! rest only if the version is its own. A leader given a command of another version logs both
//! versions, drops it, and answers its replies with a `refused` entry, which every version reads:
//! the sessions waiting on the sending node hear at once that it was not carried out. A node given
//! an item of another version logs both versions and drops it. Entries without a version come from
//! the releases before versions were written ([`UNVERSIONED`]).

use serde::{Deserialize, Serialize};

use crate::chat::engine_task::EngineCommand;
use crate::chat::forward::Side;
use crate::chat::hub::{Audience, ConnId, Role, Seen, Watch};
use crate::chat::relay::RelayCommand;

/// The version of what this release writes to Redis, and the only one it reads.
pub const PROTOCOL: u32 = 4;
/// The version of an entry that carries none: written by a release before versions.
pub const UNVERSIONED: u32 = 1;

fn unversioned() -> u32 {
    UNVERSIONED
}

/// A socket held by the sending node.
pub type Socket = ConnId;
/// A reply expected by the sending node.
pub type ReplyId = u64;

/// The side of a command that crossed nodes: sockets are the sending node's socket ids, reply
/// channels its request ids (see [`crate::chat::forward::Side`]).
#[derive(Debug)]
pub struct Remote;

impl Side for Remote {
    type Socket = Socket;
    type Reply<T: Send + std::fmt::Debug + 'static> = ReplyId;
}

/// A command on the leader's command stream.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// The protocol version ([`PROTOCOL`]).
    pub v: u32,
    /// Unique per command: a repeat (a retried XADD) is handled once.
    pub id: String,
    /// The node that sent it (where replies and frames go).
    pub from: String,
    /// The requests the sending node waits for, answered as not carried out if the command is refused.
    pub replies: Vec<ReplyId>,
    pub command: ToLeader,
}

/// What a node asks of the leader.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToLeader {
    Engine(EngineCommand<Remote>),
    Relay(RelayCommand<Remote>),
    /// A socket of the sending node was detached from a caller's contact or a counsellor's account.
    Detach {
        caller: bool,
        key: String,
        conn: ConnId,
    },
    /// The sending node's live sockets, registered again with the leader holding `token` (after a
    /// leader change): the sockets stay open. Idempotent. `watches`: the conversations its
    /// supervisor sockets monitor or joined.
    Rejoin {
        token: i64,
        sockets: Vec<(ConnId, Role)>,
        watches: Vec<Watch>,
        /// The newest message each socket was sent, per conversation: the new leader sends what
        /// came after (a dying leader may have committed messages it never sent on).
        seen: Vec<Seen>,
    },
}

/// An item for a socket of the node whose stream it is on, or a reply to one of its commands.
#[derive(Debug, Serialize, Deserialize)]
pub enum NodeItem {
    Frame {
        conn: ConnId,
        text: String,
    },
    Frames {
        conn: ConnId,
        texts: Vec<String>,
    },
    Ended {
        conn: ConnId,
        contact: String,
        text: String,
    },
    /// The answer to message `client_id` that socket `conn` sent (`Outgoing::Answer`).
    Answer {
        conn: ConnId,
        client_id: String,
        text: String,
    },
    Close {
        conn: ConnId,
        code: u16,
    },
    /// `answered` false: the command was dropped without an answer (`value` is then null, as is a unit answer).
    Reply {
        req: ReplyId,
        answered: bool,
        value: serde_json::Value,
    },
    /// The leader holding `token` asks this node to register its live sockets with it ([`ToLeader::Rejoin`]).
    Rejoin {
        token: i64,
    },
    /// A frame for this node's supervisors in `audience` (since version 4: a list of helplines, so
    /// an alert about a counsellor reaches only the supervisors of their helplines).
    Supervisors {
        audience: Audience,
        text: String,
    },
    /// The leader's whole supervisor board (a `Dashboard`, JSON): each supervisor gets the part they may see.
    Board {
        json: String,
    },
    /// Exchange `gateway` has commands no socket took where they were committed: hand its pending
    /// commands to its socket here, if any (a wake-up: the commands themselves are in PostgreSQL).
    GatewayWake {
        gateway: String,
    },
}

/// An entry of a node's stream: an item of its version, or (any version) a refusal.
#[derive(Debug, Deserialize)]
struct NodeEntry {
    #[serde(default)]
    item: Option<NodeItem>,
}

/// An item as written to a node's stream.
#[derive(Serialize)]
struct ItemEntry<'a> {
    v: u32,
    item: &'a NodeItem,
}

/// A refusal as written to a node's stream.
#[derive(Serialize)]
struct RefusalEntry {
    v: u32,
    refused: Refused,
}

/// The leader refused commands of this node (another version): the requests it waits for on them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    pub replies: Vec<ReplyId>,
}

/// The outer fields of a command, the same in every version.
#[derive(Debug, Deserialize)]
struct CommandHeader {
    #[serde(default = "unversioned")]
    v: u32,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    replies: Vec<ReplyId>,
}

/// The outer fields of a node entry, the same in every version.
#[derive(Debug, Deserialize)]
struct NodeHeader {
    #[serde(default = "unversioned")]
    v: u32,
    #[serde(default)]
    refused: Option<Refused>,
}

/// Why a command on the command stream is not carried out.
#[derive(Debug)]
pub enum CommandError {
    /// Written in another version (`theirs`) by node `from`, which waits for `replies`.
    Version { theirs: u32, from: Option<String>, replies: Vec<ReplyId> },
    /// Not a command at all, or a broken one of this version.
    Undecodable(serde_json::Error),
}

/// What an entry of this node's stream holds.
#[derive(Debug)]
pub enum ForNode {
    Item(NodeItem),
    /// The leader (speaking version `by`) refused commands of this node: answer their requests.
    Refused {
        by: u32,
        replies: Vec<ReplyId>,
    },
    /// An item of another version: not read.
    Version {
        theirs: u32,
    },
}

/// The JSON of a command of this version.
pub fn encode_command(id: String, from: String, replies: Vec<ReplyId>, command: ToLeader) -> serde_json::Result<String> {
    serde_json::to_string(&Envelope { v: PROTOCOL, id, from, replies, command })
}

/// Reads a command: one of this version, or why not (the version is read before anything else).
pub fn decode_command(json: &str) -> Result<Envelope, CommandError> {
    let header: CommandHeader = serde_json::from_str(json).map_err(CommandError::Undecodable)?;
    if header.v != PROTOCOL {
        return Err(CommandError::Version { theirs: header.v, from: header.from, replies: header.replies });
    }
    serde_json::from_str(json).map_err(CommandError::Undecodable)
}

/// The JSON of an item of this version for a node's stream.
pub fn encode_item(item: &NodeItem) -> serde_json::Result<String> {
    serde_json::to_string(&ItemEntry { v: PROTOCOL, item })
}

/// The JSON of a refusal of a node's commands, for its stream (read by every version).
pub fn encode_refusal(replies: Vec<ReplyId>) -> serde_json::Result<String> {
    serde_json::to_string(&RefusalEntry { v: PROTOCOL, refused: Refused { replies } })
}

/// Reads an entry of this node's stream (the version and a refusal are read before anything else).
pub fn decode_node(json: &str) -> serde_json::Result<ForNode> {
    let header: NodeHeader = serde_json::from_str(json)?;
    if let Some(Refused { replies }) = header.refused {
        return Ok(ForNode::Refused { by: header.v, replies });
    }
    if header.v != PROTOCOL {
        return Ok(ForNode::Version { theirs: header.v });
    }
    let entry: NodeEntry = serde_json::from_str(json)?;
    match entry.item {
        Some(item) => Ok(ForNode::Item(item)),
        None => Err(serde::de::Error::missing_field("item")),
    }
}

/// Whether the `n`th refusal of one peer's version is worth a log line (1, 2, 4, 8, …: a rolling
/// upgrade refuses many commands, the log says so without a line for each).
pub fn worth_logging(n: u64) -> bool {
    n.is_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CounsellorStatus, Party};
    use crate::routing::{ContactId, CounsellorId, Input, TransferTarget};
    use crate::store::users::User;

    fn round_trip(command: ToLeader) -> ToLeader {
        let json = encode_command("id-1".into(), "n2".into(), vec![7], command).expect("encodes");
        let env = decode_command(&json).expect("decodes");
        assert_eq!((env.v, env.id.as_str(), env.from.as_str(), env.replies.as_slice()), (PROTOCOL, "id-1", "n2", &[7][..]));
        env.command
    }

    #[test]
    fn the_cores_commands_cross_as_they_are() {
        let post = RelayCommand::<Remote>::Post {
            contact: "c1".into(),
            party: Party::Caller,
            sender_id: None,
            client_id: "k1".into(),
            text: "hello".into(),
            outbox: 42,
            take_by: 7,
        };
        match round_trip(ToLeader::Relay(post)) {
            ToLeader::Relay(RelayCommand::Post { contact, client_id, text, outbox, party: Party::Caller, take_by, .. }) => {
                assert_eq!((contact.as_str(), client_id.as_str(), text.as_str(), outbox, take_by), ("c1", "k1", "hello", 42, 7));
            }
            other => panic!("{other:?}"),
        }
        let (contact, counsellor) = (ContactId(u128::MAX - 5), CounsellorId(0x0190_f5f8_7b1c_7000_8000_0000_0000_00a1));
        let transfer = Input::Transfer { contact, to: TransferTarget::Counsellor(counsellor) };
        match round_trip(ToLeader::Engine(EngineCommand::Intervene { input: transfer.clone(), reply: 9 })) {
            ToLeader::Engine(EngineCommand::Intervene { input, reply: 9 }) => assert_eq!(input, transfer, "128-bit ids intact"),
            other => panic!("{other:?}"),
        }
        match round_trip(ToLeader::Engine(EngineCommand::Input(Input::EndByCaller { contact }))) {
            ToLeader::Engine(EngineCommand::Input(Input::EndByCaller { contact: c })) => assert_eq!(c, contact),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_leaders_own_commands_never_cross() {
        let ended = RelayCommand::<Remote>::Ended { contact: "c1".into(), reason: "caller_ended".into() };
        assert!(encode_command("i".into(), "n2".into(), vec![], ToLeader::Relay(ended)).is_err());
        let json = r#"{"v":4,"id":"i","from":"n2","replies":[],"command":{"Relay":{"Ended":{"contact":"c1","reason":"x"}}}}"#;
        assert!(matches!(decode_command(json), Err(CommandError::Undecodable(_))), "not a variant that crosses");
        let tick = r#"{"v":4,"id":"i","from":"n2","replies":[],"command":{"Engine":{"Snapshot":3}}}"#;
        assert!(matches!(decode_command(tick), Err(CommandError::Undecodable(_))));
    }

    #[test]
    fn names_other_releases_depend_on_are_kept() {
        let user = User {
            id: "u1".into(),
            username: "ana".into(),
            display_name: "Ana".into(),
            role: crate::store::users::Role::Counsellor,
            helplines: vec![],
            backup_helplines: vec![],
            languages: vec![],
            capacity: 3,
            status: "available".into(),
            disabled: false,
            created_at: 0,
            extension: None,
            senior: false,
            all_helplines: false,
            locale: None,
        };
        let sync = RelayCommand::<Remote>::CounsellorSync { user, status: CounsellorStatus::Available, outbox: 1, done: 2 };
        let json = encode_command("i".into(), "n2".into(), vec![2], ToLeader::Relay(sync)).expect("encodes");
        assert!(json.contains(r#"{"Relay":{"AgentSync":{"#), "{json}");
        let rejoin =
            ToLeader::Rejoin { token: 3, sockets: vec![(5, Role::Counsellor { user: "u1".into() })], watches: vec![], seen: vec![] };
        let json = encode_command("i".into(), "n2".into(), vec![], rejoin).expect("encodes");
        assert!(json.contains(r#"[5,{"Agent":{"user":"u1"}}]"#), "{json}");
    }

    #[test]
    fn a_command_of_another_version_is_refused_never_misread() {
        // The same shape as a command of this version, under another number: refused all the same.
        let newer = r#"{"v":5,"id":"i","from":"n9","replies":[4,5],"command":{"Relay":{"Typing":{"contact":"c","party":"caller","sender_id":null,"active":true}}}}"#;
        match decode_command(newer) {
            Err(CommandError::Version { theirs: 5, from, replies }) => {
                assert_eq!(from.as_deref(), Some("n9"));
                assert_eq!(replies, vec![4, 5]);
            }
            other => panic!("{other:?}"),
        }
        // A body this version cannot read at all, in a version it does not know: the version decides first.
        let alien = r#"{"v":7,"id":"i","from":"n9","replies":[1],"command":{"Teleport":{"to":"mars"}}}"#;
        assert!(matches!(decode_command(alien), Err(CommandError::Version { theirs: 7, .. })));
        // The release before versions.
        let legacy = r#"{"id":"i","from":"n1","cmd":{"Relay":{"Typing":{"contact":"c","party":"caller","sender_id":null,"active":true}}}}"#;
        match decode_command(legacy) {
            Err(CommandError::Version { theirs: UNVERSIONED, from, replies }) => {
                assert_eq!(from.as_deref(), Some("n1"));
                assert!(replies.is_empty());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(decode_command("[1,2]"), Err(CommandError::Undecodable(_))));
        assert!(matches!(decode_command(r#"{"v":4,"id":"i"}"#), Err(CommandError::Undecodable(_))));
    }

    #[test]
    fn a_frame_for_supervisors_names_its_helplines() {
        let item = NodeItem::Supervisors { audience: Audience::Of(vec!["children".into(), "lgbt".into()]), text: "{}".into() };
        let json = encode_item(&item).expect("encodes");
        match decode_node(&json) {
            Ok(ForNode::Item(NodeItem::Supervisors { audience, .. })) => {
                assert_eq!(audience, Audience::Of(vec!["children".into(), "lgbt".into()]));
            }
            other => panic!("{other:?}"),
        }
        // Version 3's form (one helpline, or none for every supervisor) is refused, never read as "everyone".
        let old = r#"{"v":3,"item":{"Supervisors":{"helpline":null,"text":"{}"}}}"#;
        assert!(matches!(decode_node(old), Ok(ForNode::Version { theirs: 3 })));
    }

    #[test]
    fn a_node_reads_items_of_its_version_and_refusals_of_any() {
        let json = encode_item(&NodeItem::Frame { conn: 3, text: "{}".into() }).expect("encodes");
        assert!(matches!(decode_node(&json), Ok(ForNode::Item(NodeItem::Frame { conn: 3, .. }))));
        let refusal = encode_refusal(vec![8, 9]).expect("encodes");
        assert!(matches!(decode_node(&refusal), Ok(ForNode::Refused { by: PROTOCOL, replies }) if replies == vec![8, 9]));
        // A refusal from a leader of another version is read all the same: its outer fields are stable.
        let newer_refusal = r#"{"v":5,"refused":{"replies":[1]},"extra":{"whatever":true}}"#;
        assert!(matches!(decode_node(newer_refusal), Ok(ForNode::Refused { by: 5, replies }) if replies == vec![1]));
        let newer = r#"{"v":5,"item":{"Frame":{"conn":3,"text":"{}"}}}"#;
        assert!(matches!(decode_node(newer), Ok(ForNode::Version { theirs: 5 })), "same shape, other version: not read");
        let legacy = r#"{"Frame":{"conn":3,"text":"{}"}}"#;
        assert!(matches!(decode_node(legacy), Ok(ForNode::Version { theirs: UNVERSIONED })));
        assert!(decode_node(r#"{"v":4}"#).is_err(), "neither an item nor a refusal");
        assert!(decode_node("nonsense").is_err());
    }

    #[test]
    fn refusals_are_logged_sparingly() {
        let logged: Vec<u64> = (1..=20).filter(|n| worth_logging(*n)).collect();
        assert_eq!(logged, vec![1, 2, 4, 8, 16]);
    }
}
