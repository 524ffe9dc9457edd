# syntax=docker/dockerfile:1
# Proxenos container image: build on Debian 12, run on Debian 12 slim as an unprivileged user.
#
#   docker build -t proxenos:0.1.0 .
#
# Not built on the project's build machines (no Docker there): see docs/deploy.md for what was
# and was not exercised. The package lists mirror scripts/install-deps (build side) and the
# binary's shared libraries (`ldd build/proxenos`, runtime side).

FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      libyaml-cpp-dev libre2-dev nlohmann-json3-dev libfmt-dev libspdlog-dev libcli11-dev \
      libssl-dev libnghttp2-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the build reads (.dockerignore keeps the rest out of the context).
COPY CMakeLists.txt ./
COPY src ./src
COPY tools ./tools
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPROXENOS_TESTS=OFF \
 && cmake --build build --target proxenos \
 && strip build/proxenos \
 && build/proxenos version

FROM debian:12-slim
# The shared libraries the binary links (libstdc++6 and libgcc-s1 come with the base image).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libyaml-cpp0.7 libre2-9 libfmt9 libspdlog1.10 libssl3 libnghttp2-14 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/proxenos /usr/local/bin/proxenos
# 65532: the conventional "nonroot" uid/gid; deploy/deployment.yaml runs as the same ids.
USER 65532:65532
# 8080 HTTP and 8443 HTTPS listeners; 8877 admin (probes, /metrics, diagnostics).
EXPOSE 8080 8443 8877
ENTRYPOINT ["/usr/local/bin/proxenos"]
# The admin server listens on loopback by default; in a pod it must listen on the pod IP for the
# kubelet's probes (the Deployment passes its own arguments anyway).
CMD ["run", "--kubernetes", "--admin-address=0.0.0.0:8877"]
