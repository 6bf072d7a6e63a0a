// A reference IDTOKEN minted by HTCondor's own library (the `htcondor` wheel's libcondor_utils),
// to check shared/domain/idtokens.ts against the real thing: test/integration/idtokens-htcondor.test.ts
// builds this into a shared object and scripts/condor/reference-token.py loads it with ctypes after
// `import htcondor2` (which loads libcondor_utils and reads the configuration: TRUST_DOMAIN,
// SEC_TOKEN_POOL_SIGNING_KEY_FILE / SEC_PASSWORD_DIRECTORY and the key file, mode 0600).
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

class CondorError;

// The signatures exported by libcondor_utils_25_0_14 (see ../shared/TOOLCHAIN.md).
class Condor_Auth_Passwd {
 public:
  static bool generate_token(const std::string &id, const std::string &key_id,
                             const std::vector<std::string> &authz_list, long lifetime,
                             std::string &token, int ident, CondorError *err);
};
bool getTokenSigningKey(const std::string &key_id, std::string &contents, CondorError *err);

static int copy_out(const std::string &value, char *out, int capacity) {
  if (static_cast<int>(value.size()) >= capacity) return -1;
  std::memcpy(out, value.data(), value.size());
  out[value.size()] = '\0';
  return static_cast<int>(value.size());
}

// Mints a token for `subject` with the space-separated authorizations (e.g. "READ ADVERTISE_STARTD").
extern "C" int annex_generate_token(const char *subject, const char *key_id, const char *authz,
                                    long lifetime, char *out, int capacity) {
  std::vector<std::string> authz_list;
  std::istringstream words(authz);
  for (std::string word; words >> word;) authz_list.push_back(word);
  std::string token;
  if (!Condor_Auth_Passwd::generate_token(subject, key_id, authz_list, lifetime, token, 0, nullptr)) {
    return -1;
  }
  return copy_out(token, out, capacity);
}

// The key material HTCondor feeds to HKDF for `key_id`: read from the key file, unscrambled and
// (for POOL) doubled.
extern "C" int annex_signing_key(const char *key_id, char *out, int capacity) {
  std::string key;
  if (!getTokenSigningKey(key_id, key, nullptr)) return -1;
  if (static_cast<int>(key.size()) > capacity) return -1;
  std::memcpy(out, key.data(), key.size());
  return static_cast<int>(key.size());
}
