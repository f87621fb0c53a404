//! A Redis Cluster's topology as its nodes report it: `CLUSTER NODES` lines and `INFO` fields.

/// One line of `CLUSTER NODES`, as one node sees another.
#[derive(Debug, Clone)]
pub(super) struct NodeEntry {
    pub(super) id: String,
    pub(super) port: u16,
    flags: Vec<String>,
    /// The id of its master, for a replica.
    pub(super) master: Option<String>,
    /// Whether the cluster bus link to it is up.
    connected: bool,
    /// The slot ranges it serves (inclusive).
    pub(super) slots: Vec<(u16, u16)>,
}

impl NodeEntry {
    pub(super) fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    pub(super) fn is_master(&self) -> bool {
        self.has("master")
    }

    /// Neither failed, nor suspected, nor still being met.
    pub(super) fn is_healthy(&self) -> bool {
        self.connected && !["fail", "fail?", "handshake", "noaddr"].iter().any(|f| self.has(f))
    }

    pub(super) fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(from, to)| (from..=to).contains(&slot))
    }
}

/// Parses `CLUSTER NODES`: `<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent>
/// <pong-recv> <config-epoch> <link-state> <slot>...` per line (slots under migration, in
/// brackets, are left out).
pub(super) fn parse_nodes(text: &str) -> Result<Vec<NodeEntry>, String> {
    text.lines().filter(|l| !l.trim().is_empty()).map(parse_node_line).collect()
}

fn parse_node_line(line: &str) -> Result<NodeEntry, String> {
    let bad = || format!("unexpected CLUSTER NODES line: {line:?}");
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 8 {
        return Err(bad());
    }
    let address = fields[1].split(['@', ',']).next().ok_or_else(bad)?;
    let port = address.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).ok_or_else(bad)?;
    let mut slots = Vec::new();
    for range in fields[8..].iter().filter(|s| !s.starts_with('[')) {
        let (from, to) = range.split_once('-').unwrap_or((range, range));
        slots.push((from.parse().map_err(|_| bad())?, to.parse().map_err(|_| bad())?));
    }
    Ok(NodeEntry {
        id: fields[0].to_owned(),
        port,
        flags: fields[2].split(',').map(str::to_owned).collect(),
        master: (fields[3] != "-").then(|| fields[3].to_owned()),
        connected: fields[7] == "connected",
        slots,
    })
}

/// The value of `field` in an INFO-style reply (`field:value` lines).
pub(super) fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')).map(str::trim)
}
