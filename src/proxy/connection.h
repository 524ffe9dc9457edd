#pragma once
// What a worker knows of each downstream connection it accepted, whatever its protocol.

namespace proxenos::proxy {

class DownstreamConnection {
 public:
  virtual ~DownstreamConnection() = default;
  virtual void start() = 0;
  // Drain: close now if idle, else once the work in progress is done.
  virtual void drain() = 0;
};

}  // namespace proxenos::proxy
