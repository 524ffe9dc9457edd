#include "config/snapshot.h"

namespace proxenos::config {

const char* to_string(SecurityModel m) {
  switch (m) {
    case SecurityModel::kXfp:
      return "XFP";
    case SecurityModel::kSecure:
      return "SECURE";
    case SecurityModel::kInsecure:
      return "INSECURE";
  }
  return "XFP";
}

}  // namespace proxenos::config
