/*
 * fe_peer.c: what the access log shows of a request besides its method and
 * path: the client's numeric address, the protocol and the user agent, read
 * from h2o's request while it is alive (an answer may be logged after the
 * client has gone).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "h2o.h"

#include "fe_server_int.h"

void fe_peer_address(h2o_req_t *req, char out[FE_CLIENT_ADDR_MAX_BYTES]) {
  out[0] = '\0';
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  if (req->conn == NULL || req->conn->callbacks->get_peername == NULL ||
      req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss) ==
          0)
    return;
  const void *addr = NULL;
  if (ss.ss_family == AF_INET)
    addr = &((const struct sockaddr_in *)&ss)->sin_addr;
  else if (ss.ss_family == AF_INET6)
    addr = &((const struct sockaddr_in6 *)&ss)->sin6_addr;
  if (addr == NULL ||
      inet_ntop(ss.ss_family, addr, out, FE_CLIENT_ADDR_MAX_BYTES) == NULL)
    out[0] = '\0';
}

const char *fe_peer_protocol(const h2o_req_t *req) {
  switch (req->version) {
  case 0x200:
    return "HTTP/2";
  case 0x101:
    return "HTTP/1.1";
  case 0x100:
    return "HTTP/1.0";
  default:
    return req->version >= 0x200 ? "HTTP/2" : "HTTP/1.x";
  }
}

h2o_iovec_t fe_peer_user_agent(h2o_req_t *req) {
  ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_USER_AGENT, -1);
  if (i < 0) return h2o_iovec_init(NULL, 0);
  h2o_iovec_t v = req->headers.entries[i].value;
  if (v.base == NULL) v.base = "";
  if (v.len > FE_ACCESS_FIELD_MAX_BYTES) v.len = FE_ACCESS_FIELD_MAX_BYTES;
  return v;
}
