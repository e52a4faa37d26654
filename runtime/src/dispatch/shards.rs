//! Shard leases: the 16 due shards (and the schedules' shard) shared by the
//! dispatchers of several replicas on one store.
//!
//! Each replica keeps a **member lease** (`dispatch` / `member#<replica>`)
//! and the shard leases it holds (`dispatch` / `shard#03`, and `sched` for
//! the scheduler), all single-item conditional writes ([`Store::take_lease`]),
//! renewed every `ttl / 3`. Each round ([`ShardLeaser::step`]) it reads the
//! group's leases, counts the live members, keeps at most
//! `ceil(16 / members)` shards (releasing the rest, so a replica that joins
//! finds free shards), and takes free or expired ones up to that share: a
//! dead replica's shards are taken over once their lease expires, within
//! `ttl + ttl / 3`. A dispatcher scans only the shards its replica holds
//! ([`HeldShards`]), until the end of each lease as last renewed — never
//! past it, so two replicas scan the same shard only if their clocks
//! disagree. The conditional claim still decides every dispatch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::Clock;
use crate::model::{DUE_SHARDS, Timestamp};
use crate::store::{LeaseRequest, LeaseTake, Store};

/// The lease group of the dispatchers.
pub const LEASE_GROUP: &str = "dispatch";

/// The lease of the schedules' shard (the scheduler runs where it is held).
pub const SCHEDULE_LEASE: &str = "sched";

/// The default lease TTL.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

fn shard_name(shard: u32) -> String {
    format!("shard#{shard:02}")
}

fn member_name(replica: &str) -> String {
    format!("member#{replica}")
}

/// The shards one replica holds, each until when.
#[derive(Debug, Default)]
pub struct HeldShards {
    until: Mutex<[Option<Timestamp>; DUE_SHARDS as usize + 1]>,
}

impl HeldShards {
    fn slots(&self) -> std::sync::MutexGuard<'_, [Option<Timestamp>; DUE_SHARDS as usize + 1]> {
        self.until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every shard, held forever (a lone dispatcher without leases).
    pub fn all() -> HeldShards {
        HeldShards {
            until: Mutex::new([Some(Timestamp(i64::MAX)); DUE_SHARDS as usize + 1]),
        }
    }

    /// Whether due shard `shard` is held at `now`.
    pub fn holds(&self, shard: u32, now: Timestamp) -> bool {
        self.slots()
            .get(shard as usize)
            .copied()
            .flatten()
            .is_some_and(|t| t > now)
    }

    /// Whether the schedules' shard is held at `now`.
    pub fn holds_schedules(&self, now: Timestamp) -> bool {
        self.holds(DUE_SHARDS, now)
    }

    /// The due shards held at `now`.
    pub fn held(&self, now: Timestamp) -> Vec<u32> {
        (0..DUE_SHARDS).filter(|s| self.holds(*s, now)).collect()
    }

    fn set(&self, slot: u32, until: Option<Timestamp>) {
        if let Some(s) = self.slots().get_mut(slot as usize) {
            *s = until;
        }
    }
}

/// Settings of a [`ShardLeaser`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShardLeaseConfig {
    /// This replica's id (stable across restarts, so a restarted replica
    /// renews its own leases at once).
    pub replica: String,
    /// How long a lease lasts unless renewed.
    pub ttl: Duration,
}

impl ShardLeaseConfig {
    /// `replica` with the default TTL.
    pub fn new(replica: impl Into<String>) -> Self {
        ShardLeaseConfig {
            replica: replica.into(),
            ttl: DEFAULT_LEASE_TTL,
        }
    }

    /// With lease TTL `ttl` (at least 300 ms).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_millis(300));
        self
    }
}

/// What a replica's leaser did so far.
#[derive(Debug, Default)]
pub struct LeaseStats {
    /// Shards taken from another replica whose lease had expired.
    pub taken_over: AtomicU64,
    /// Shards released to make room for other replicas.
    pub released: AtomicU64,
}

/// Keeps one replica's share of the shard leases.
pub struct ShardLeaser {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: ShardLeaseConfig,
    held: Arc<HeldShards>,
    stats: Arc<LeaseStats>,
}

impl ShardLeaser {
    /// A leaser for `config.replica`, holding nothing yet.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: ShardLeaseConfig) -> Self {
        ShardLeaser {
            store,
            clock,
            config,
            held: Arc::new(HeldShards::default()),
            stats: Arc::new(LeaseStats::default()),
        }
    }

    /// The shards held (shared with the dispatcher and the scheduler).
    pub fn held(&self) -> Arc<HeldShards> {
        self.held.clone()
    }

    /// What it did so far.
    pub fn stats(&self) -> Arc<LeaseStats> {
        self.stats.clone()
    }

    /// How often [`ShardLeaser::run`] renews.
    pub fn renew_interval(&self) -> Duration {
        self.config.ttl / 3
    }

    fn request(&self, name: String, until: Timestamp) -> LeaseRequest {
        LeaseRequest {
            group: LEASE_GROUP.into(),
            name,
            owner: self.config.replica.clone(),
            until,
            steal_from: None,
        }
    }

    /// One round: renew the member lease and held shards, release shards
    /// over this replica's share, take free or expired ones up to it.
    pub async fn step(&self) -> crate::Result<()> {
        let me = self.config.replica.as_str();
        let now = self.clock.now();
        let until = now.plus(self.config.ttl);
        self.store
            .take_lease(&self.request(member_name(me), until), now)
            .await?;
        let leases = self.store.list_leases(LEASE_GROUP).await?;
        let mut members: Vec<&str> = leases
            .iter()
            .filter(|l| l.until >= now)
            .filter_map(|l| l.name.strip_prefix("member#"))
            .collect();
        if !members.contains(&me) {
            members.push(me);
        }
        let share = DUE_SHARDS.div_ceil(u32::try_from(members.len()).unwrap_or(1).max(1));
        let lease_of = |name: &str| leases.iter().find(|l| l.name == name);
        let mut mine: Vec<u32> = (0..DUE_SHARDS)
            .filter(|s| lease_of(&shard_name(*s)).is_some_and(|l| l.owner == me && l.until >= now))
            .collect();
        // Over the share: release the highest shards, for replicas that joined.
        while mine.len() > share as usize {
            let Some(shard) = mine.pop() else { break };
            self.held.set(shard, None);
            if self
                .store
                .release_lease(LEASE_GROUP, &shard_name(shard), me)
                .await?
            {
                self.stats.released.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    replica = me,
                    shard,
                    members = members.len(),
                    "released a shard"
                );
            }
        }
        for &shard in &mine {
            self.take(shard, None, until, now).await?;
        }
        let mut count = mine.iter().filter(|s| self.held.holds(**s, now)).count();
        for shard in 0..DUE_SHARDS {
            if count >= share as usize {
                break;
            }
            if mine.contains(&shard) {
                continue;
            }
            let prev = lease_of(&shard_name(shard));
            if prev.is_some_and(|l| l.until >= now) {
                continue;
            }
            if self.take(shard, prev, until, now).await? {
                count += 1;
            }
        }
        // The schedules' shard: whoever takes it first keeps it while alive.
        let sched = self
            .store
            .take_lease(&self.request(SCHEDULE_LEASE.into(), until), now)
            .await?;
        self.held.set(DUE_SHARDS, sched.is_taken().then_some(until));
        Ok(())
    }

    /// Takes or renews one shard (`prev`: its expired lease, if any); true
    /// if held now.
    async fn take(
        &self,
        shard: u32,
        prev: Option<&crate::store::Lease>,
        until: Timestamp,
        now: Timestamp,
    ) -> crate::Result<bool> {
        match self
            .store
            .take_lease(&self.request(shard_name(shard), until), now)
            .await?
        {
            LeaseTake::Taken(_) => {
                if let Some(prev) = prev.filter(|p| p.owner != self.config.replica) {
                    self.stats.taken_over.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("durafn_shard_takeovers_total").increment(1);
                    tracing::info!(
                        replica = %self.config.replica,
                        shard,
                        from = %prev.owner,
                        expired_ms = now.0 - prev.until.0,
                        "took over a shard"
                    );
                }
                self.held.set(shard, Some(until));
                Ok(true)
            }
            LeaseTake::Held(_) => {
                self.held.set(shard, None);
                Ok(false)
            }
        }
    }

    /// Renews every `ttl / 3` until `shutdown` completes, then releases
    /// what it holds (so the other replicas take it over at once).
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.step().await {
                tracing::warn!(replica = %self.config.replica, error = %e, "shard lease round failed; retrying");
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.clock.sleep_until(self.clock.now().plus(self.renew_interval())) => {}
            }
        }
        self.release_all().await;
    }

    /// Releases every lease this replica holds.
    pub async fn release_all(&self) {
        let me = self.config.replica.as_str();
        let mut names: Vec<String> = (0..DUE_SHARDS).map(shard_name).collect();
        names.push(SCHEDULE_LEASE.into());
        names.push(member_name(me));
        for (slot, name) in names.iter().enumerate() {
            if let Ok(slot) = u32::try_from(slot) {
                self.held.set(slot, None);
            }
            if let Err(e) = self.store.release_lease(LEASE_GROUP, name, me).await {
                tracing::warn!(replica = me, lease = %name, error = %e, "could not release a lease");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::clock::ManualClock;
    use crate::store::SqliteStore;

    fn replica(store: &Arc<dyn Store>, clock: &Arc<ManualClock>, id: &str) -> ShardLeaser {
        let clock: Arc<dyn Clock> = clock.clone();
        ShardLeaser::new(
            store.clone(),
            clock,
            ShardLeaseConfig::new(id).with_ttl(Duration::from_secs(9)),
        )
    }

    fn all_covered_once(replicas: &[&ShardLeaser], now: Timestamp) {
        for shard in 0..DUE_SHARDS {
            let holders = replicas
                .iter()
                .filter(|r| r.held().holds(shard, now))
                .count();
            assert_eq!(holders, 1, "shard {shard} held by {holders} replicas");
        }
    }

    #[tokio::test]
    async fn replicas_share_the_shards_rebalance_and_take_over_a_dead_one() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("s.db")).unwrap());
        let clock = Arc::new(ManualClock::new(Timestamp(1_000_000)));
        let a = replica(&store, &clock, "a");
        a.step().await.unwrap();
        assert_eq!(
            a.held().held(clock.now()).len(),
            16,
            "alone, a holds every shard"
        );
        assert!(a.held().holds_schedules(clock.now()));

        // b joins: a releases down to its share, b takes the rest.
        let b = replica(&store, &clock, "b");
        b.step().await.unwrap();
        a.step().await.unwrap();
        b.step().await.unwrap();
        assert_eq!(a.held().held(clock.now()).len(), 8);
        assert_eq!(b.held().held(clock.now()).len(), 8);
        all_covered_once(&[&a, &b], clock.now());
        assert!(
            !b.held().holds_schedules(clock.now()),
            "the scheduler stays on a"
        );

        // c joins: shares of ceil(16/3) = 6.
        let c = replica(&store, &clock, "c");
        for _ in 0..2 {
            c.step().await.unwrap();
            a.step().await.unwrap();
            b.step().await.unwrap();
        }
        c.step().await.unwrap();
        for r in [&a, &b, &c] {
            assert!(r.held().held(clock.now()).len() <= 6);
        }
        all_covered_once(&[&a, &b, &c], clock.now());

        // a dies: after its leases expire, b and c take its shards over.
        let a_had = a.held().held(clock.now()).len();
        for _ in 0..4 {
            clock.advance(Duration::from_secs(3));
            b.step().await.unwrap();
            c.step().await.unwrap();
        }
        all_covered_once(&[&b, &c], clock.now());
        let taken = b.stats().taken_over.load(Ordering::Relaxed)
            + c.stats().taken_over.load(Ordering::Relaxed);
        assert_eq!(taken as usize, a_had, "every shard of a was taken over");
        assert!(b.held().holds_schedules(clock.now()) || c.held().holds_schedules(clock.now()));

        // A lease not renewed in time stops being held locally too.
        clock.advance(Duration::from_secs(10));
        assert!(b.held().held(clock.now()).is_empty());

        // A graceful stop releases at once.
        b.step().await.unwrap();
        c.step().await.unwrap();
        c.release_all().await;
        b.step().await.unwrap();
        assert_eq!(b.held().held(clock.now()).len(), 16);
    }
}
