//! Simulated network latency ([`kubesim::Options::latency`], binary `--latency-ms`): every
//! response waits one round trip on its own task, so concurrent requests overlap; a WATCH pays it
//! on its initial response and on every event, and the delays of successive events do not add
//! up.

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ApiResource, DynamicObject, WatchEvent, WatchParams};
use kube::core::GroupVersionKind;
use kubesim::{KubeSim, Options};
use serde_json::json;
use std::time::{Duration, Instant};

const LATENCY: Duration = Duration::from_millis(50);

async fn sim_with_latency(latency: Duration) -> KubeSim {
    KubeSim::start_with(Options {
        latency,
        ..Options::default()
    })
    .await
    .expect("start kubesim")
}

fn config_maps(client: kube::Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("", "v1", "ConfigMap"),
        "configmaps",
    );
    Api::namespaced_with(client, "default", &resource)
}

fn config_map(name: &str, value: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"}, "data": {"value": value}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_overlap_and_each_waits_one_round_trip() {
    let sim = sim_with_latency(LATENCY).await;
    sim.handle()
        .apply(&config_map("site", "a"), "test", false)
        .expect("seed");
    let maps = config_maps(sim.client().expect("client"));

    // One request alone pays the round trip.
    let started = Instant::now();
    maps.get("site").await.expect("get");
    let single = started.elapsed();
    assert!(
        single >= LATENCY,
        "one GET took {single:?}, less than {LATENCY:?}"
    );

    // Twenty at once overlap: far less than twenty round trips one after the other.
    let started = Instant::now();
    let results = futures::future::join_all((0..20).map(|_| maps.get("site"))).await;
    let concurrent = started.elapsed();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(concurrent >= LATENCY, "20 GETs took {concurrent:?}");
    assert!(
        concurrent < LATENCY * 20 / 4,
        "20 concurrent GETs at {LATENCY:?} took {concurrent:?}: they were served one at a time"
    );
    eprintln!("latency {LATENCY:?}: one GET {single:?}, 20 concurrent GETs {concurrent:?}");

    // The latency can be changed (and switched off) at run time.
    sim.handle().set_latency(Duration::ZERO);
    let started = Instant::now();
    maps.get("site").await.expect("get");
    assert!(started.elapsed() < LATENCY, "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_events_arrive_one_round_trip_after_the_change_without_adding_up() {
    let sim = sim_with_latency(LATENCY).await;
    let handle = sim.handle();
    handle
        .apply(&config_map("site", "0"), "test", false)
        .expect("seed");
    let maps = config_maps(sim.client().expect("client"));
    let version = handle.resource_version().to_string();

    let started = Instant::now();
    let mut stream = maps
        .watch(&WatchParams::default().timeout(30), &version)
        .await
        .expect("watch starts")
        .boxed();
    let opened = started.elapsed();
    assert!(opened >= LATENCY, "the watch opened after {opened:?}");
    // A second watch on another kind must not be held up by this one's delayed events.
    let deployments: Api<DynamicObject> = Api::namespaced_with(
        sim.client().expect("client"),
        "default",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apps", "v1", "Deployment"),
            "deployments",
        ),
    );

    // Five changes in a burst, made in process (no request latency of their own).
    let changed = Instant::now();
    for value in 1..=5 {
        handle
            .apply(&config_map("site", &value.to_string()), "test", false)
            .expect("change");
    }
    let listed = Instant::now();
    deployments.list(&Default::default()).await.expect("list");
    let list_took = listed.elapsed();
    let mut arrivals = Vec::new();
    while arrivals.len() < 5 {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .expect("an event within 10 s")
            .expect("a watch event")
            .expect("the stream goes on");
        let WatchEvent::Modified(object) = event else {
            continue;
        };
        let value = object.data["data"]["value"]
            .as_str()
            .unwrap_or("")
            .to_string();
        arrivals.push((value, changed.elapsed()));
    }
    let values: Vec<&str> = arrivals.iter().map(|(value, _)| value.as_str()).collect();
    assert_eq!(values, ["1", "2", "3", "4", "5"], "events keep their order");
    let (first, last) = (arrivals[0].1, arrivals[4].1);
    assert!(
        first >= LATENCY,
        "the first event arrived {first:?} after the change, before one round trip"
    );
    assert!(
        last < LATENCY * 2,
        "the fifth event arrived {last:?} after the burst: the delays added up"
    );
    assert!(
        list_took < LATENCY * 3,
        "a LIST on another connection took {list_took:?} while events were in flight"
    );
    eprintln!("latency {LATENCY:?}: watch opened in {opened:?}, events at {arrivals:?}");
}
