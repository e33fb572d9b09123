//! The flags that make a node one of several (`rfc6455 serve --redis`,
//! `--redis-sentinel` or `--redis-cluster`).

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
    /// Share them through the primary that these Redis Sentinels monitor, given
    /// comma-separated (redis://[[USER]:PASSWORD@]HOST:PORT, each with that
    /// sentinel's own credentials). A failover is followed: the node asks the
    /// sentinels again, reconnects to the new primary and catches up.
    #[arg(long, value_name = "URLS", value_delimiter = ',', group = "shared")]
    pub redis_sentinel: Vec<String>,
    /// With --redis-sentinel: the name the sentinels monitor the primary under.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "mymaster",
        requires = "redis_sentinel"
    )]
    pub redis_master_name: String,
    /// With --redis-sentinel: the user the primary (and its replicas) are reached
    /// as, if not `default`.
    #[arg(long, value_name = "USER")]
    pub redis_primary_user: Option<String>,
    /// With --redis-sentinel: the primary's password (`requirepass`). From the
    /// environment, it stays out of the process list.
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "RFC6455_REDIS_PRIMARY_PASSWORD",
        hide_env_values = true
    )]
    pub redis_primary_password: Option<String>,
    /// With --redis, --redis-sentinel or --redis-cluster: a node silent this long is dead, and its
    /// members are announced as left (within a third more).
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, requires = "shared",
          value_parser = crate::parse_seconds)]
    pub node_timeout: f64,
}

impl RedisArgs {
    /// The options, if a Redis is given: `history` messages kept per room;
    /// `signed_users` if users come from tokens (one may be on several nodes).
    pub fn options(&self, history: usize, signed_users: bool) -> Option<RedisOptions> {
        let target = if let Some(url) = &self.redis {
            Target::Single(url.clone())
        } else if !self.redis_cluster.is_empty() {
            Target::Cluster(self.redis_cluster.clone())
        } else if !self.redis_sentinel.is_empty() {
            Target::Sentinel {
                sentinels: self.redis_sentinel.clone(),
                service: self.redis_master_name.clone(),
                primary_auth: super::subscriber::Auth {
                    username: self.redis_primary_user.clone(),
                    password: self.redis_primary_password.clone(),
                },
            }
        } else {
            return None;
        };
        Some(RedisOptions {
            target,
            node_timeout: Duration::from_secs_f64(self.node_timeout),
            history,
            signed_users,
        })
    }
}
