//! The command line the store's examples share: an optional MongoDB URI (else
//! `LABCHAT_TEST_MONGO_URI`) and numeric flags, each with a default and a maximum.

use std::error::Error;

pub type BoxError = Box<dyn Error + Send + Sync>;

/// A numeric flag: its name (`--rooms`), default and largest value allowed (at least 1).
pub struct Flag {
    pub name: &'static str,
    pub default: usize,
    pub max: usize,
}

/// The URI and each flag's value, in the order of `flags`; `program` names the example in the
/// usage line of an error.
pub fn parse(program: &str, flags: &[Flag]) -> Result<(String, Vec<usize>), BoxError> {
    let mut uri = std::env::var("LABCHAT_TEST_MONGO_URI").ok().filter(|u| !u.trim().is_empty());
    let mut values: Vec<usize> = flags.iter().map(|f| f.default).collect();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg.starts_with("mongodb://") || arg.starts_with("mongodb+srv://") {
            uri = Some(arg);
            continue;
        }
        let Some(i) = flags.iter().position(|f| f.name == arg) else {
            let usage: Vec<String> = flags.iter().map(|f| format!("[{} N]", f.name)).collect();
            return Err(format!("unknown argument {arg:?}; usage: {program} [MONGODB_URI] {}", usage.join(" ")).into());
        };
        let (name, max) = (flags[i].name, flags[i].max);
        let v = args.next().ok_or_else(|| format!("{name} needs a value"))?;
        let n: usize = v.parse().map_err(|e| format!("{name} {v}: {e}"))?;
        if !(1..=max).contains(&n) {
            return Err(format!("{name} must be 1 to {max}, got {n}").into());
        }
        values[i] = n;
    }
    let uri =
        uri.ok_or("no MongoDB URI: pass one, or set LABCHAT_TEST_MONGO_URI (scripts/mongo-test-server.sh uri)")?;
    Ok((uri, values))
}
