//! Adopting repositories as they are (issue 14): fixture repositories shaped like common public
//! layouts, written by each test (a Skaffold monorepo with bare image names and a nested
//! Dockerfile; plain manifests beside a kustomization with `resources`, `labels` and `images`; a
//! base with an overlay per environment; an init container running a shell script). For each,
//! `gitship init`, then `validate`, `render`, `deploy --sandbox` and `drift --sandbox` succeed
//! with no edit to the repository, and kustomize trees render as `kubectl kustomize` builds them
//! (plus gitship's labels and the apps' images).

use serde_json::Value;

use crate::kustomize::{
    assert_contains, find, has_gitship_labels, kubectl_kustomize, objects, repo,
};
use crate::support::repo::Repo;
use crate::support::require_tool;

const REGISTRY: &str = "registry.example.com/shop";

/// A Deployment of `image` (container `server`) and its Service.
fn service(name: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
        - name: server
          image: {image}
          ports:
            - containerPort: 8080
          env:
            - name: PORT
              value: \"8080\"
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector:
    app: {name}
  ports:
    - name: http
      port: 80
      targetPort: 8080
"
    )
}

/// The init container's script: shell variables, command substitutions and a default.
const SCRIPT: &str = "MAX_RETRIES=12
for i in $(seq 1 ${MAX_RETRIES}); do
  echo \"Attempt $i: pinging ${FRONTEND_ADDR}...\"
  STATUSCODE=$(wget --server-response http://${FRONTEND_ADDR} 2>&1 | awk '/^  HTTP/{print $2}')
  if [ \"${STATUSCODE}\" -eq 200 ]; then exit 0; fi
  sleep \"${RETRY_INTERVAL:-10}\"
done
exit 1
";

/// A load generator waiting for the frontend in an init container, as public demos write it;
/// its main container's image is `image`.
fn load_generator(image: &str) -> String {
    let script: String = SCRIPT
        .lines()
        .map(|line| format!("              {line}\n"))
        .collect();
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: loadgenerator
spec:
  selector:
    matchLabels:
      app: loadgenerator
  template:
    metadata:
      labels:
        app: loadgenerator
    spec:
      initContainers:
        - name: frontend-check
          image: busybox:1.36
          command:
            - /bin/sh
            - -exc
            - |
{script}          env:
            - name: FRONTEND_ADDR
              value: \"frontend:80\"
      containers:
        - name: main
          image: {image}
          args: [\"--host\", \"http://$(FRONTEND_ADDR)\"]
          env:
            - name: FRONTEND_ADDR
              value: \"frontend:80\"
"
    )
}

/// A `FROM scratch` app (the only kind the engine here builds).
fn dockerfile() -> &'static str {
    "FROM scratch\nCOPY . /app\n"
}

/// `init`, then `validate`, then `render`: the rendered objects.
fn adopt(repo: &Repo, env: &str) -> Vec<Value> {
    let init = repo.ok(&["init", "--env", env, "--registry", REGISTRY]);
    assert!(init.stdout.contains("next:\n"), "{}", init.all());
    assert!(
        init.stdout.contains("checked: `gitship validate"),
        "init checked what it wrote: {}",
        init.all()
    );
    let validate = repo.ok(&["validate", env]);
    assert!(validate.stdout.starts_with("ok "), "{}", validate.all());
    let render = repo.ok(&["render", env]);
    objects(&render.stdout)
}

/// `deploy --sandbox`, then `drift --sandbox` finds nothing.
fn deploy_and_check_drift(repo: &Repo, env: &str) {
    let deploy = repo.ok(&["deploy", env, "--sandbox"]);
    assert!(deploy.all().contains("deployed"), "{}", deploy.all());
    let drift = repo.gitship(&["drift", env, "--sandbox"]);
    assert_eq!(
        drift.code,
        0,
        "no drift right after a deploy:\n{}",
        drift.all()
    );
}

/// The image of the first container (or init container, `list`) of a workload.
fn image<'a>(object: &'a Value, list: &str) -> &'a str {
    object["spec"]["template"]["spec"][list][0]["image"]
        .as_str()
        .unwrap_or_else(|| panic!("no image in {object}"))
}

/// An app's built image: `<registry>/<app>:<content tag>`.
fn is_built_image(reference: &str, app: &str) -> bool {
    reference
        .strip_prefix(&format!("{REGISTRY}/{app}:"))
        .is_some_and(|tag| !tag.is_empty() && !tag.contains(['/', ':']))
}

/// `kubectl kustomize DIR`'s objects with each bare app name replaced by the image gitship
/// rendered for it (taken from `rendered`, checked to be the app's built image).
fn kustomize_with_images(repo: &Repo, dir: &str, rendered: &[Value], apps: &[&str]) -> Vec<Value> {
    let mut built = kubectl_kustomize(repo, dir);
    for object in &mut built {
        let (Some(kind), Some(name)) = (
            object["kind"].as_str().map(str::to_string),
            object["metadata"]["name"].as_str().map(str::to_string),
        ) else {
            continue;
        };
        let Some(Value::Array(containers)) = object.pointer_mut("/spec/template/spec/containers")
        else {
            continue;
        };
        let ours = find(rendered, &kind, &name);
        for (index, container) in containers.iter_mut().enumerate() {
            let Some(app) = container["image"].as_str().map(str::to_string) else {
                continue;
            };
            if apps.contains(&app.as_str()) {
                let reference = ours["spec"]["template"]["spec"]["containers"][index]["image"]
                    .as_str()
                    .expect("image")
                    .to_string();
                assert!(is_built_image(&reference, &app), "{app}: {reference}");
                container["image"] = Value::String(reference);
            }
        }
    }
    built
}

/// Every object kustomize builds is rendered, with the same fields plus gitship's labels.
fn assert_matches_kustomize(built: &[Value], rendered: &[Value], env: &str) {
    assert_eq!(built.len(), rendered.len(), "{rendered:#?}");
    for object in built {
        let kind = object["kind"].as_str().expect("kind");
        let name = object["metadata"]["name"].as_str().expect("name");
        let ours = find(rendered, kind, name);
        assert_contains(object, ours, &format!("{kind} {name}"));
        has_gitship_labels(ours, env);
    }
}

#[test]
fn a_skaffold_monorepo_with_bare_image_names_deploys_unchanged() {
    let loadgenerator = load_generator("loadgenerator");
    let repo = repo(&[
        ("README.md", "# shop\n"),
        ("src/adservice/Dockerfile", dockerfile()),
        ("src/adservice/main.txt", "ads\n"),
        // The nested Dockerfile: the build context is `src/cartservice/src`.
        ("src/cartservice/src/Dockerfile", dockerfile()),
        ("src/cartservice/src/cart.txt", "cart\n"),
        ("src/cartservice/tests/test.txt", "not in the image\n"),
        ("src/frontend/Dockerfile", dockerfile()),
        ("src/frontend/index.html", "<h1>shop</h1>\n"),
        ("src/loadgenerator/Dockerfile", dockerfile()),
        ("src/loadgenerator/locustfile.txt", "load\n"),
        (
            "skaffold.yaml",
            "apiVersion: skaffold/v4beta6
kind: Config
metadata:
  name: app
build:
  artifacts:
    - image: adservice
      context: src/adservice
    - image: cartservice
      context: src/cartservice/src
    - image: frontend
      context: src/frontend
  tagPolicy:
    gitCommit: {}
  local:
    useBuildkit: false
manifests:
  rawYaml:
    - ./kubernetes-manifests/*.yaml
deploy:
  kubectl: {}
---
apiVersion: skaffold/v4beta6
kind: Config
metadata:
  name: loadgenerator
requires:
  - configs: [app]
build:
  artifacts:
    - image: loadgenerator
      context: src/loadgenerator
manifests:
  rawYaml:
    - ./kubernetes-manifests/loadgenerator.yaml
deploy:
  kubectl: {}
",
        ),
        (
            "kubernetes-manifests/adservice.yaml",
            &service("adservice", "adservice"),
        ),
        (
            "kubernetes-manifests/cartservice.yaml",
            &service("cartservice", "cartservice"),
        ),
        (
            "kubernetes-manifests/frontend.yaml",
            &service("frontend", "frontend"),
        ),
        ("kubernetes-manifests/loadgenerator.yaml", &loadgenerator),
    ]);

    let rendered = adopt(&repo, "dev");
    let settings = std::fs::read_to_string(repo.path().join("gitship.yaml")).expect("gitship.yaml");
    // The Dockerfile is `<context>/Dockerfile`: the context alone says it.
    assert!(
        settings.contains("context: src/cartservice/src"),
        "{settings}"
    );
    assert!(!settings.contains("dockerfile:"), "{settings}");
    assert_eq!(rendered.len(), 7, "{rendered:#?}");
    for app in ["adservice", "cartservice", "frontend"] {
        let deployment = find(&rendered, "Deployment", app);
        assert!(
            is_built_image(image(deployment, "containers"), app),
            "{deployment}"
        );
        has_gitship_labels(deployment, "dev");
    }
    let load = find(&rendered, "Deployment", "loadgenerator");
    assert!(is_built_image(image(load, "containers"), "loadgenerator"));
    // Not an app: as written.
    assert_eq!(image(load, "initContainers"), "busybox:1.36");

    // `plan` names every substitution, in JSON and for people.
    let (_, plan) = repo.plan_json(&["dev", "--sandbox"]);
    let mut substituted: Vec<(String, String)> = plan
        .image_substitutions
        .iter()
        .map(|s| (s.image.clone(), s.object.clone()))
        .collect();
    substituted.sort();
    let namespace = find(&rendered, "Deployment", "adservice")["metadata"]["namespace"]
        .as_str()
        .expect("namespace")
        .to_string();
    let expected: Vec<(String, String)> = ["adservice", "cartservice", "frontend", "loadgenerator"]
        .iter()
        .map(|app| (app.to_string(), format!("Deployment {namespace}/{app}")))
        .collect();
    assert_eq!(substituted, expected);
    for substitution in &plan.image_substitutions {
        assert!(is_built_image(&substitution.reference, &substitution.image));
        assert_eq!(
            substitution.container,
            "spec.template.spec.containers[server]".replace(
                "server",
                if substitution.image == "loadgenerator" {
                    "main"
                } else {
                    "server"
                },
            )
        );
        assert!(
            substitution.source.starts_with(&format!(
                "kubernetes-manifests/{}.yaml:",
                substitution.image
            )),
            "{substitution:?}"
        );
    }
    let human = repo.ok(&["plan", "dev", "--sandbox"]);
    assert!(
        human
            .stdout
            .contains(&format!("image: adservice -> {REGISTRY}/adservice:"))
            && human
                .stdout
                .contains(&format!("in Deployment {namespace}/adservice")),
        "{}",
        human.stdout
    );
    // `diff` shows them as `plan` does (its plan has no images of its own).
    let diff = repo.gitship(&["diff", "dev", "--sandbox"]);
    assert_eq!(diff.code, 2, "{}", diff.all());
    for line in human
        .stdout
        .lines()
        .filter(|line| line.contains("image: ") && line.contains(" -> "))
    {
        assert!(diff.stdout.contains(line), "{line}\n{}", diff.stdout);
    }
    assert!(
        diff.stdout
            .contains(&format!("image: adservice -> {REGISTRY}/adservice:")),
        "{}",
        diff.stdout
    );

    deploy_and_check_drift(&repo, "dev");

    // `images.bare_names: false` turns it off; unknown keys are still refused.
    let with = |extra: &str| format!("{settings}{extra}");
    repo.write("gitship.yaml", &with("images:\n  bare_names: false\n"));
    let render = repo.ok(&["render", "dev"]);
    let off = objects(&render.stdout);
    assert_eq!(
        image(find(&off, "Deployment", "adservice"), "containers"),
        "adservice"
    );
    repo.write("gitship.yaml", &with("images:\n  bare_name: false\n"));
    let run = repo.gitship(&["render", "dev"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("unknown key `images.bare_name`")
            && run.stderr.contains("did you mean `images.bare_names`?"),
        "{}",
        run.stderr
    );
}

#[test]
fn plain_manifests_beside_a_kustomization_render_as_kustomize_builds_them() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let repo = repo(&[
        ("src/web/Dockerfile", dockerfile()),
        ("src/web/index.html", "web\n"),
        ("src/worker/Dockerfile", dockerfile()),
        ("src/worker/job.txt", "work\n"),
        (
            "k8s/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - web.yaml
  - worker.yaml
  - redis.yaml
labels:
  - pairs:
      app.kubernetes.io/part-of: shop
    includeSelectors: false
images:
  - name: redis
    newName: mirror.example.com/library/redis
    newTag: \"7.2\"
",
        ),
        ("k8s/web.yaml", &service("web", "web")),
        ("k8s/worker.yaml", &service("worker", "worker")),
        ("k8s/redis.yaml", &service("redis", "redis")),
        ("k8s/README.md", "Apply with `kubectl apply -k k8s`.\n"),
    ]);
    let rendered = adopt(&repo, "staging");
    let built = kustomize_with_images(&repo, "k8s", &rendered, &["web", "worker"]);
    assert_matches_kustomize(&built, &rendered, "staging");
    let redis = find(&rendered, "Deployment", "redis");
    assert_eq!(
        image(redis, "containers"),
        "mirror.example.com/library/redis:7.2"
    );
    assert_eq!(
        redis["metadata"]["labels"]["app.kubernetes.io/part-of"],
        "shop"
    );
    deploy_and_check_drift(&repo, "staging");
}

#[test]
fn a_base_with_overlays_per_environment_is_adopted_per_environment() {
    if !require_tool("kubectl", "help") {
        return;
    }
    let overlay = |replicas: u32, mode: &str| {
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
replicas:
  - name: web
    count: {replicas}
labels:
  - pairs:
      tier: {mode}
    includeSelectors: false
patches:
  - target:
      kind: ConfigMap
      name: settings
    patch: |
      - op: replace
        path: /data/mode
        value: {mode}
"
        )
    };
    let repo = repo(&[
        ("src/web/Dockerfile", dockerfile()),
        ("src/web/index.html", "web\n"),
        (
            "kustomize/base/kustomization.yaml",
            "resources:\n  - web.yaml\n  - settings.yaml\n",
        ),
        ("kustomize/base/web.yaml", &service("web", "web")),
        (
            "kustomize/base/settings.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: base\n",
        ),
        (
            "kustomize/overlays/staging/kustomization.yaml",
            &overlay(2, "calm"),
        ),
        (
            "kustomize/overlays/production/kustomization.yaml",
            &overlay(5, "busy"),
        ),
    ]);
    let rendered = adopt(&repo, "staging");
    let config = std::fs::read_to_string(repo.path().join("config/staging.yaml")).expect("config");
    assert!(
        config.contains("path: kustomize/overlays/staging"),
        "{config}"
    );
    let built = kustomize_with_images(&repo, "kustomize/overlays/staging", &rendered, &["web"]);
    assert_matches_kustomize(&built, &rendered, "staging");
    let web = find(&rendered, "Deployment", "web");
    assert_eq!(web["spec"]["replicas"], 2);
    assert_eq!(
        find(&rendered, "ConfigMap", "settings")["data"]["mode"],
        "calm"
    );
    deploy_and_check_drift(&repo, "staging");
}

#[test]
fn an_init_container_shell_script_is_left_as_written() {
    let raw = "apiVersion: v1
kind: ConfigMap
metadata:
  name: envsubst-template
  annotations:
    gitship.dev/template: \"off\"
data:
  nginx.conf: |
    server_name ${values.server_name};
    root ${HOME}/www;
";
    let mixed = "apiVersion: v1
kind: ConfigMap
metadata:
  name: greeting
data:
  greeting: \"hello from ${env.name}, ${USER}\"
";
    let repo = repo(&[
        ("deploy/loadgenerator.yaml", &load_generator("nginx:1.27")),
        ("deploy/frontend.yaml", &service("frontend", "nginx:1.27")),
        ("deploy/envsubst.yaml", raw),
        ("deploy/greeting.yaml", mixed),
    ]);
    let rendered = adopt(&repo, "staging");
    assert_eq!(rendered.len(), 5, "{rendered:#?}");

    let load = find(&rendered, "Deployment", "loadgenerator");
    let init = &load["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(init["command"][2], SCRIPT, "the script, byte for byte");
    assert_eq!(
        load["spec"]["template"]["spec"]["containers"][0]["args"][1],
        "http://$(FRONTEND_ADDR)"
    );
    let greeting = find(&rendered, "ConfigMap", "greeting");
    assert_eq!(greeting["data"]["greeting"], "hello from staging, ${USER}");
    let untouched = find(&rendered, "ConfigMap", "envsubst-template");
    assert_eq!(
        untouched["data"]["nginx.conf"],
        "server_name ${values.server_name};\nroot ${HOME}/www;\n"
    );
    has_gitship_labels(untouched, "staging");

    // `validate` lists what it left literal, as information.
    let validate = repo.ok(&["validate", "staging"]);
    for placeholder in [
        "${FRONTEND_ADDR}",
        "${STATUSCODE}",
        "${RETRY_INTERVAL:-10}",
        "${USER}",
    ] {
        assert!(
            validate
                .stdout
                .contains(&format!("left literal: {placeholder}  deploy/")),
            "{placeholder}: {}",
            validate.stdout
        );
    }
    assert!(
        !validate.stdout.contains("${HOME}") && !validate.stderr.contains("warning"),
        "templating off is not templated, and nothing is a warning: {}",
        validate.all()
    );
    let json = repo.ok(&["-o", "json", "validate", "staging"]);
    let report: gitship::facade::ops::validate::ValidateReport =
        serde_json::from_str(&json.stdout).expect("validate JSON");
    let results = report.environments;
    let frontend_addr: Vec<&str> = results[0]
        .left_literal
        .iter()
        .filter(|left| left.placeholder == "${FRONTEND_ADDR}")
        .map(|left| left.location.as_str())
        .collect();
    assert_eq!(
        frontend_addr,
        [
            "deploy/loadgenerator.yaml:23:43",
            "deploy/loadgenerator.yaml:24:60"
        ],
        "{}",
        json.stdout
    );

    deploy_and_check_drift(&repo, "staging");

    // Near-misses of gitship's sources are still errors, with a did-you-mean.
    repo.write(
        "deploy/typos.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typos\ndata:\n  a: ${terrafrom.db}\n  b: ${Values.mode}\n  c: ${imagse.api}\n",
    );
    let run = repo.gitship(&["validate", "staging"]);
    assert_eq!(run.code, 1, "{}", run.all());
    for (at, suggestion) in [
        ("deploy/typos.yaml:6:6", "did you mean `terraform`?"),
        ("deploy/typos.yaml:7:6", "did you mean `values`?"),
        ("deploy/typos.yaml:8:6", "did you mean `images`?"),
    ] {
        assert!(
            run.stderr
                .lines()
                .any(|line| line.contains(at) && line.contains(suggestion)),
            "{at}: {}",
            run.stderr
        );
    }
}
