//! The flags that make a node one of several (`rfc6455 serve --redis` or
//! `--redis-cluster`).

use super::{RedisOptions, Target};
use std::time::Duration;

/// Where the nodes share rooms, and how soon a silent one counts as dead.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RedisArgs {
    /// Share rooms, names and history with the other nodes using this Redis
    /// (redis://[:PASSWORD@]HOST:PORT[/DB]); without it, everything is in memory.
    #[arg(long, value_name = "URL", group = "shared")]
    pub redis: Option<String>,
    /// Share them through a Redis Cluster (7.0 or later: sharded pub/sub), given
    /// by some of its nodes, comma-separated (redis://H1:P1,redis://H2:P2); each
    /// room lives on one shard and its messages go through that shard only.
    #[arg(long, value_name = "URLS", value_delimiter = ',', group = "shared")]
    pub redis_cluster: Vec<String>,
    /// With --redis or --redis-cluster: a node silent this long is dead, and its
    /// members are announced as left (within a third more).
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, requires = "shared",
          value_parser = crate::parse_seconds)]
    pub node_timeout: f64,
}

impl RedisArgs {
    /// The options, if a Redis is given: `history` messages kept per room;
    /// `signed_users` if users come from tokens (one may be on several nodes).
    pub fn options(&self, history: usize, signed_users: bool) -> Option<RedisOptions> {
        let target = match (&self.redis, self.redis_cluster.is_empty()) {
            (Some(url), _) => Target::Single(url.clone()),
            (None, false) => Target::Cluster(self.redis_cluster.clone()),
            (None, true) => return None,
        };
        Some(RedisOptions {
            target,
            node_timeout: Duration::from_secs_f64(self.node_timeout),
            history,
            signed_users,
        })
    }
}
