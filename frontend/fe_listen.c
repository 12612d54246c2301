/*
 * fe_listen.c: what the server listens with: the TLS context (certificate,
 * key, ALPN h2 and http/1.1) and the bound, listening sockets.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fe_server_int.h"

int fe_listen_tls(fe_server *s, const fe_options *o, char *err, size_t errlen) {
  FILE *f;
  if ((f = fopen(o->tls_cert, "r")) == NULL) {
    snprintf(err, errlen, "--tls-cert %s: %s", o->tls_cert, strerror(errno));
    return -1;
  }
  fclose(f);
  if ((f = fopen(o->tls_key, "r")) == NULL) {
    snprintf(err, errlen, "--tls-key %s: %s", o->tls_key, strerror(errno));
    return -1;
  }
  fclose(f);

  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL) {
    snprintf(err, errlen, "TLS: cannot create a context");
    return -1;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
                               SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(ctx, o->tls_cert) != 1) {
    snprintf(err, errlen, "--tls-cert %s: not a usable PEM certificate (%s)",
             o->tls_cert, ERR_reason_error_string(ERR_get_error()));
    goto fail;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, o->tls_key, SSL_FILETYPE_PEM) != 1) {
    snprintf(err, errlen, "--tls-key %s: not a usable PEM private key (%s)",
             o->tls_key, ERR_reason_error_string(ERR_get_error()));
    goto fail;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    snprintf(err, errlen, "--tls-key %s does not match --tls-cert %s",
             o->tls_key, o->tls_cert);
    goto fail;
  }
  /* h2o's own list names only the h2 drafts; a client that asks for
   * http/1.1 by ALPN must get it rather than no protocol at all. */
  static const h2o_iovec_t alpn[] = {
      {H2O_STRLIT("h2")}, {H2O_STRLIT("http/1.1")}, {NULL, 0}};
  h2o_ssl_register_alpn_protocols(ctx, alpn);
  s->ssl_ctx = ctx;
  return 0;

fail:
  ERR_clear_error();
  SSL_CTX_free(ctx);
  return -1;
}

int fe_listen_bind(fe_server *s, const fe_listen_addr *a, bool tls, char *err,
                   size_t errlen) {
  char port[8];
  snprintf(port, sizeof(port), "%u", a->port);
  struct addrinfo hints, *ai = NULL;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int gai = getaddrinfo(a->host[0] != '\0' ? a->host : NULL, port, &hints, &ai);
  if (gai != 0) {
    snprintf(err, errlen, "--listen %s: %s", a->text, gai_strerror(gai));
    return -1;
  }

  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1;
  if (fd < 0) goto syserr;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
    goto syserr;
  if (ai->ai_family == AF_INET6 &&
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)
    goto syserr;
  if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0)
    goto syserr;

  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  char host[INET6_ADDRSTRLEN] = "?", serv[8] = "?";
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
    getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv,
                sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV);
  fe_listener *l = &s->listeners[s->listener_count++];
  l->fd = fd;
  snprintf(l->url, sizeof(l->url), "%s://%s%s%s:%s", tls ? "https" : "http",
           ss.ss_family == AF_INET6 ? "[" : "", host,
           ss.ss_family == AF_INET6 ? "]" : "", serv);
  freeaddrinfo(ai);
  return 0;

syserr:
  snprintf(err, errlen, "--listen %s: %s", a->text, strerror(errno));
  if (fd >= 0) close(fd);
  freeaddrinfo(ai);
  return -1;
}
