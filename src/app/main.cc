// proxenos: run | validate | routes | version

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>

#include "app/commands.h"
#include "app/server.h"

int main(int argc, char** argv) {
  CLI::App cli{"Proxenos: a Kubernetes-native API gateway serving Ambassador resources"};
  cli.require_subcommand(1);

  proxenos::app::ServerOptions options;
  std::string log_level = "info";
  auto* run = cli.add_subcommand("run", "serve the configuration at --config");
  run->add_option("--config", options.config_path, "YAML/JSON file or folder (read recursively)");
  run->add_flag("--kubernetes", options.kubernetes,
                "also read configuration from the Kubernetes API (in-cluster or --kubeconfig)");
  run->add_option("--kubeconfig", options.kubeconfig,
                  "kubeconfig file (default: in-cluster, else $KUBECONFIG or ~/.kube/config)");
  run->add_option("--context", options.kube_context, "kubeconfig context (default: current)");
  run->add_option("--namespace", options.namespace_,
                  "watch only this namespace (default: all; AMBASSADOR_SINGLE_NAMESPACE)");
  run->add_option("--publish-service", options.publish_service,
                  "NS/NAME of the gateway's own Service, whose load balancer Ingress status shows");
  run->add_flag("--update-mapping-status", options.update_mapping_status,
                "write Mapping status (AMBASSADOR_UPDATE_MAPPING_STATUS=true)");
  run->add_option("--workers", options.workers, "worker threads (default: number of cores)");
  run->add_option("--admin-address", options.admin_address, "admin listener IP:PORT");
  run->add_option("--log-level", log_level, "trace, debug, info, warn, error");
  run->add_option("--drain-seconds", options.drain_seconds,
                  "on SIGTERM/SIGINT, how long in-flight requests may finish");
  run->add_option("--ambassador-id", options.ambassador_id, "serve resources for this id");
  bool no_watch = false;
  run->add_flag("--no-watch", no_watch, "do not reload when --config changes (SIGHUP still does)");

  std::string path;
  std::string ambassador_id = "default";
  auto* validate = cli.add_subcommand("validate", "report every problem in a config path");
  validate->add_option("path", path, "YAML/JSON file or folder")->required();
  validate->add_option("--ambassador-id", ambassador_id, "check resources for this id");
  auto* routes = cli.add_subcommand("routes", "print the compiled route table");
  routes->add_option("path", path, "YAML/JSON file or folder")->required();
  routes->add_option("--ambassador-id", ambassador_id, "show resources for this id");
  auto* version = cli.add_subcommand("version", "print the version");

  CLI11_PARSE(cli, argc, argv);

  if (*version) {
    std::printf("proxenos %s\n", PROXENOS_VERSION);
    return 0;
  }
  if (*validate) return proxenos::app::validate_command(path, ambassador_id);
  if (*routes) return proxenos::app::routes_command(path, ambassador_id);

  options.watch = !no_watch;
  // Emissary's environment variables, for manifests written for it.
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v != nullptr ? v : "";
  };
  if (options.namespace_.empty() && !env("AMBASSADOR_SINGLE_NAMESPACE").empty()) {
    options.namespace_ = env("AMBASSADOR_NAMESPACE");
    if (options.namespace_.empty()) options.namespace_ = env("POD_NAMESPACE");
  }
  if (env("AMBASSADOR_UPDATE_MAPPING_STATUS") == "true") options.update_mapping_status = true;
  options.label_selector = env("AMBASSADOR_LABEL_SELECTOR");
  options.field_selector = env("AMBASSADOR_FIELD_SELECTOR");
  if (options.ambassador_id == "default" && !env("AMBASSADOR_ID").empty()) {
    options.ambassador_id = env("AMBASSADOR_ID");
  }
  if (*run && options.config_path.empty() && !options.kubernetes) {
    std::fprintf(stderr, "run: --config PATH or --kubernetes is required\n");
    return 2;
  }

  // Process log on stderr; stdout carries the access log.
  auto logger = spdlog::stderr_color_mt("proxenos");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  proxenos::app::Server server(options);
  return server.run();
}
