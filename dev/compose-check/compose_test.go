package main

// The compose file against the local stack it mirrors: the same services, published ports,
// topics, images and Flink settings as dev/up, dev/versions.env and the ecom binary's defaults.
// Run by dev/test (go test ./dev/compose-check/); ECOM_BIN names the ecom binary.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

func load(t *testing.T) *types.Project {
	t.Helper()
	p, err := Load(filepath.Join("..", "..", "docker-compose.yml"))
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

func repoFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// versions reads dev/versions.env.
func versions(t *testing.T) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(repoFile(t, "dev/versions.env"), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(k, "#") {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// defaultPort is the port of an address flag's default in `ecom <cmd> --help`.
func defaultPort(t *testing.T, cmd, flag string) string {
	t.Helper()
	bin := os.Getenv("ECOM_BIN")
	if bin == "" {
		t.Skip("ECOM_BIN not set: run through dev/test")
	}
	out, err := exec.Command(bin, cmd, "--help").Output()
	if err != nil {
		t.Fatalf("%s %s --help: %v", bin, cmd, err)
	}
	m := regexp.MustCompile(`(?s)` + regexp.QuoteMeta(flag) + ` <[A-Z_]+>.*?\[default: [0-9.]+:([0-9]+)\]`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no default address for %s in `ecom %s --help`", flag, cmd)
	}
	return m[1]
}

func published(s types.ServiceConfig) map[string]string {
	out := map[string]string{}
	for _, p := range s.Ports {
		out[p.Published] = p.HostIP
	}
	return out
}

func command(s types.ServiceConfig) string {
	return strings.Join(append(append([]string{}, s.Entrypoint...), s.Command...), " ")
}

func TestEveryPartOfThePipelineIsAService(t *testing.T) {
	p := load(t)
	for _, n := range []string{"kafka", "kafka-topics", "redis", "elasticsearch", "kibana", "kibana-setup",
		"mongodb", "jobmanager", "taskmanager", "ecom-init", "ecom-train", "ecom-serve", "ecom-sink",
		"ecom-job", "ecom-generate", "ecom-dashboard"} {
		if _, ok := p.Services[n]; !ok {
			t.Errorf("no service %s", n)
		}
	}
}

func TestPortsAreTheLocalStacksOnLoopback(t *testing.T) {
	p := load(t)
	want := map[string][]string{
		"kafka":          {"9092"},
		"redis":          {"6379"},
		"elasticsearch":  {"9200"},
		"kibana":         {"5601"},
		"mongodb":        {"27017"},
		"jobmanager":     {"8081"},
		"ecom-serve":     {defaultPort(t, "serve", "--grpc-addr"), defaultPort(t, "serve", "--http-addr")},
		"ecom-sink":      {defaultPort(t, "sink", "--metrics-addr")},
		"ecom-dashboard": {defaultPort(t, "dashboard", "--addr")},
	}
	for svc, ports := range want {
		got := published(p.Services[svc])
		for _, pt := range p.Services[svc].Ports {
			if strconv.Itoa(int(pt.Target)) != pt.Published {
				t.Errorf("%s: port %s is published from container port %d, not the same port", svc, pt.Published, pt.Target)
			}
		}
		for _, port := range ports {
			if ip, ok := got[port]; !ok || ip != "127.0.0.1" {
				t.Errorf("%s: port %s not published on 127.0.0.1 (published: %v)", svc, port, got)
			}
		}
	}
	// The local stack's clients default to these too (dev/env.sh).
	env := repoFile(t, "dev/env.sh")
	for _, addr := range []string{"127.0.0.1:9092", "redis://127.0.0.1:6379", "http://127.0.0.1:9200", "mongodb://127.0.0.1:27017", "http://127.0.0.1:8081"} {
		if !strings.Contains(env, addr) {
			t.Errorf("dev/env.sh no longer names %s: update this test and docker-compose.yml together", addr)
		}
	}
}

func TestTheTopicsAreDevUpsWithTheCatalogCompacted(t *testing.T) {
	p := load(t)
	m := regexp.MustCompile(`(?m)^topics=\(([^)]*)\)`).FindStringSubmatch(repoFile(t, "dev/up"))
	if m == nil {
		t.Fatal("dev/up has no topics=(...) line")
	}
	cmd := command(p.Services["kafka-topics"])
	for _, topic := range strings.Fields(m[1]) {
		if !strings.Contains(cmd, topic) {
			t.Errorf("kafka-topics does not create %s", topic)
		}
	}
	if !regexp.MustCompile(`--topic ecom\.catalog .*cleanup\.policy=compact`).MatchString(strings.ReplaceAll(cmd, "\\\n", " ")) {
		t.Errorf("ecom.catalog is not created compacted: %s", cmd)
	}
}

func TestImagesAreThePinnedVersions(t *testing.T) {
	p := load(t)
	v := versions(t)
	want := map[string]string{
		"kafka":         "apache/kafka:" + v["KAFKA_VERSION"],
		"kafka-topics":  "apache/kafka:" + v["KAFKA_VERSION"],
		"elasticsearch": "docker.elastic.co/elasticsearch/elasticsearch:" + v["ELASTICSEARCH_VERSION"],
		"kibana":        "docker.elastic.co/kibana/kibana:" + v["ELASTICSEARCH_VERSION"],
		"jobmanager":    "flink:" + v["FLINK_VERSION"] + "-java17",
		"taskmanager":   "flink:" + v["FLINK_VERSION"] + "-java17",
	}
	for svc, img := range want {
		if got := p.Services[svc].Image; got != img {
			t.Errorf("%s: image %s, want %s (dev/versions.env)", svc, got, img)
		}
	}
	// Redis and MongoDB are not pinned with the local stack (it runs Redis and FerretDB), but
	// are official images all the same.
	for svc, official := range map[string]string{"redis": "redis:", "mongodb": "mongo:"} {
		if got := p.Services[svc].Image; !strings.HasPrefix(got, official) {
			t.Errorf("%s: image %s is not the official %s*", svc, got, official)
		}
	}
}

func TestContainersReachEachOtherByServiceName(t *testing.T) {
	p := load(t)
	env := p.Services["kafka"].Environment
	if l := env["KAFKA_ADVERTISED_LISTENERS"]; l == nil || !strings.Contains(*l, "INSIDE://kafka:29092") || !strings.Contains(*l, "OUTSIDE://127.0.0.1:9092") {
		t.Errorf("Kafka must advertise kafka:29092 to containers and 127.0.0.1:9092 to the host: %v", l)
	}
	for _, svc := range []string{"ecom-sink", "ecom-job", "ecom-generate"} {
		if c := command(p.Services[svc]); !strings.Contains(c, "kafka:29092") {
			t.Errorf("%s does not use Kafka's inside listener: %s", svc, c)
		}
	}
	serve := command(p.Services["ecom-serve"])
	if !strings.Contains(serve, "0.0.0.0:50051") || !strings.Contains(command(p.Services["ecom-job"]), "--serve-address ecom-serve:50051") {
		t.Errorf("the job must reach serve at ecom-serve:50051: serve %q", serve)
	}
	// The job's key file: made by ecom-init, mounted where the TaskManager reads it.
	found := false
	for _, v := range p.Services["taskmanager"].Volumes {
		found = found || (v.Source == "ecom-secrets" && v.Target == "/ecom-secrets")
	}
	if !found || !strings.Contains(command(p.Services["ecom-job"]), "--ip-hash-key-file /ecom-secrets/ip-hash-key") {
		t.Error("the TaskManager must mount ecom-secrets where the job's --ip-hash-key-file points")
	}
}

func TestFlinkKeepsCheckpointsOnAVolumeAndReportsToPrometheus(t *testing.T) {
	p := load(t)
	for _, svc := range []string{"jobmanager", "taskmanager"} {
		props := p.Services[svc].Environment["FLINK_PROPERTIES"]
		if props == nil {
			t.Fatalf("%s has no FLINK_PROPERTIES", svc)
		}
		for _, want := range []string{"execution.checkpointing.storage: filesystem", "execution.checkpointing.dir: file:///flink-data/checkpoints",
			"execution.checkpointing.savepoint-dir: file:///flink-data/savepoints", "PrometheusReporterFactory"} {
			if !strings.Contains(*props, want) {
				t.Errorf("%s: FLINK_PROPERTIES lacks %q", svc, want)
			}
		}
		mounted := false
		for _, v := range p.Services[svc].Volumes {
			mounted = mounted || (v.Source == "flink-data" && v.Target == "/flink-data")
		}
		if !mounted {
			t.Errorf("%s does not mount flink-data at /flink-data", svc)
		}
	}
}
