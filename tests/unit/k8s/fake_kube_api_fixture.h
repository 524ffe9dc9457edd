#pragma once
// A fixture for tests of what talks to the API server through an ApiClient: the fake server, a
// loop thread and a client on it pointed at the fake.

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "fake_kube_api.h"
#include "k8s/api_client.h"
#include "k8s/kube_config.h"

namespace proxenos::k8s::testing {

class FakeKubeApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fake_.ok()) << "fake API server did not start";
    KubeConfig config;
    std::string e;
    ASSERT_TRUE(parse_server_url(fake_.url(), &config, &e)) << e;
    client_ = ApiClient::create(lt_.loop(), config, &e);
    ASSERT_TRUE(client_) << e;
  }
  // A subclass destroys its loop-owned objects (through lt_.call) first, then calls this.
  void TearDown() override {
    lt_.stop();
    client_.reset();
    lt_.loop().run_deferred();
  }

  // How many requests the fake has logged with `method` and a path containing `path_part`.
  int count_requests(const std::string& method, const std::string& path_part) {
    nlohmann::json log = nlohmann::json::parse(fake_.get("/fake/requests"));
    int n = 0;
    for (const auto& r : log) {
      if (r["method"] == method &&
          r["path"].get<std::string>().find(path_part) != std::string::npos)
        ++n;
    }
    return n;
  }

  FakeKubeApi fake_;
  LoopThread lt_;
  std::unique_ptr<ApiClient> client_;
};

}  // namespace proxenos::k8s::testing
