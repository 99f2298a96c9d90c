use std::sync::Arc;
use std::time::Duration;

use object_store::memory::InMemory;

use super::*;

const TTL: Duration = Duration::from_secs(12);

fn node(store: &Arc<InMemory>, id: &str) -> Lease {
    Lease::new(store.clone(), id, Some(format!("http://{id}:8080")), TTL)
}

fn epoch_of(s: &Standing) -> Option<u64> {
    match s {
        Standing::Leader { epoch, .. } => Some(*epoch),
        _ => None,
    }
}

fn leader_of(s: &Standing) -> Option<String> {
    match s {
        Standing::Follower { leader } => leader.as_ref().map(|r| r.holder.clone()),
        _ => None,
    }
}

#[tokio::test(start_paused = true)]
async fn the_first_node_takes_the_lease_and_the_next_follows_it() {
    let store = Arc::new(InMemory::new());
    let (mut a, mut b) = (node(&store, "a"), node(&store, "b"));
    assert_eq!(epoch_of(&a.step().await), Some(1));
    assert_eq!(leader_of(&b.step().await).as_deref(), Some("a"));
    assert_eq!(a.guard().epoch(), Ok(1));
    assert!(b.guard().epoch().unwrap_err().contains("does not hold"));
    let stored = Lease::read(store.as_ref()).await.unwrap().unwrap();
    assert_eq!((stored.holder.as_str(), stored.epoch, stored.released), ("a", 1, false));
}

#[tokio::test(start_paused = true)]
async fn a_renewing_leader_keeps_the_lease_however_long_it_runs() {
    let store = Arc::new(InMemory::new());
    let (mut a, mut b) = (node(&store, "a"), node(&store, "b"));
    a.step().await;
    for _ in 0..20 {
        tokio::time::advance(TTL / 4).await;
        assert_eq!(epoch_of(&a.step().await), Some(1));
        assert_eq!(leader_of(&b.step().await).as_deref(), Some("a"));
    }
}

#[tokio::test(start_paused = true)]
async fn a_standby_takes_over_one_ttl_after_the_leader_stopped_renewing_and_the_old_leader_is_fenced() {
    let store = Arc::new(InMemory::new());
    let (mut a, mut b) = (node(&store, "a"), node(&store, "b"));
    a.step().await;
    let old_guard = a.guard();
    b.step().await;
    tokio::time::advance(TTL - Duration::from_millis(1)).await;
    assert_eq!(leader_of(&b.step().await).as_deref(), Some("a"), "not before a whole TTL");
    assert!(old_guard.epoch().is_err(), "the old leader stopped counting itself leader before that");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(epoch_of(&b.step().await), Some(2));
    match a.step().await {
        Standing::Lost { epoch: 1, reason } => assert!(reason.contains("another node"), "{reason}"),
        other => panic!("the old leader must learn it lost the lease: {other:?}"),
    }
    assert_eq!(leader_of(&a.step().await).as_deref(), Some("b"), "and then follows the new one");
}

#[tokio::test(start_paused = true)]
async fn a_released_lease_is_taken_at_once() {
    let store = Arc::new(InMemory::new());
    let (mut a, mut b) = (node(&store, "a"), node(&store, "b"));
    a.step().await;
    b.step().await;
    a.release().await.unwrap();
    assert!(a.guard().epoch().is_err());
    assert_eq!(epoch_of(&b.step().await), Some(2));
}

#[tokio::test(start_paused = true)]
async fn of_standbys_racing_for_an_expired_lease_exactly_one_wins() {
    let store = Arc::new(InMemory::new());
    let mut a = node(&store, "a");
    a.step().await;
    let mut standbys: Vec<Lease> = (0..4).map(|i| node(&store, &format!("s{i}"))).collect();
    for s in &mut standbys {
        s.step().await;
    }
    tokio::time::advance(TTL).await;
    let results = futures::future::join_all(standbys.iter_mut().map(|s| s.step())).await;
    let winners: Vec<u64> = results.iter().filter_map(epoch_of).collect();
    assert_eq!(winners, vec![2], "{results:?}");
}

#[tokio::test(start_paused = true)]
async fn a_restarted_leader_takes_its_own_lease_back_at_once_with_a_new_epoch() {
    let store = Arc::new(InMemory::new());
    let mut before = node(&store, "a");
    before.step().await;
    let mut b = node(&store, "b");
    b.step().await;
    let mut after = node(&store, "a");
    assert_eq!(epoch_of(&after.step().await), Some(2));
    assert!(matches!(before.step().await, Standing::Lost { epoch: 1, .. }), "the old process is fenced");
    assert_eq!(leader_of(&b.step().await).as_deref(), Some("a"));
}
