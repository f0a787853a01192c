// Package dtlsflags gives the example programs their command-line
// switches for SCTP over DTLS (RFC 8261): a certificate and its key, and
// the CA that verifies the peers, read from PEM files (crypto/tls's
// LoadX509KeyPair), turned into a transport/sctp DTLSConfig; the
// registrar's name rules ("pool=pattern") turned into an enrp.PoolACL;
// and the names a PE or PU accepts for its registrars (-registrar-name),
// turned into an asap.RegistrarAuthorizer.
// Every misconfiguration is an error at start, naming the flag.
package dtlsflags

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/go-rserpool/rserpool/asap"
	"github.com/go-rserpool/rserpool/enrp"
	"github.com/go-rserpool/rserpool/transport"
	"github.com/go-rserpool/rserpool/transport/sctp"
)

// Files names the PEM files of a host's DTLS configuration. The zero
// Files turns DTLS off.
type Files struct {
	// Cert is this host's certificate chain (leaf first), Key its
	// private key: -tls-cert and -tls-key.
	Cert, Key string
	// CA holds the certificates of the CAs that verify the peers, in both
	// directions (-tls-ca). It is required with Cert unless SystemRoots
	// is set.
	CA string
	// SystemRoots (-tls-system-roots) lets the host's root CAs verify
	// the peers when CA is empty (sctp.DTLSConfig.SystemRoots): any
	// publicly trusted certificate then authenticates, so it is off by
	// default.
	SystemRoots bool
	// ServerName, if set, is the DNS name every listener dialled must
	// carry (-tls-server-name).
	ServerName string
	// RegistrarName, if set, is a comma-separated list of name patterns
	// (transport.Identity.Matches) of which a registrar's certificate
	// must match one for a PE or PU to use it (-registrar-name; see
	// Registrar). Unlike ServerName it does not apply to the PEs a PU
	// dials.
	RegistrarName string
}

// Register adds -tls-cert, -tls-key, -tls-ca and -tls-system-roots to
// fs, and -tls-server-name when serverName is true.
func (f *Files) Register(fs *flag.FlagSet, serverName bool) {
	fs.StringVar(&f.Cert, "tls-cert", "", "PEM file of this host's certificate chain (leaf first): turns SCTP over DTLS on; needs -tls-key")
	fs.StringVar(&f.Key, "tls-key", "", "PEM file of the private key of -tls-cert")
	fs.StringVar(&f.CA, "tls-ca", "", "PEM file of the CA certificates that verify peers; required with -tls-cert unless -tls-system-roots")
	fs.BoolVar(&f.SystemRoots, "tls-system-roots", false, "without -tls-ca, verify peers against the host's root CAs (any publicly trusted certificate authenticates)")
	if serverName {
		fs.StringVar(&f.ServerName, "tls-server-name", "", "DNS name the registrar's certificate must carry (default: any certificate the CA verifies)")
	}
}

// RegisterRegistrarName adds -registrar-name to fs (the PE's and PU's
// flag: see Files.RegistrarName).
func (f *Files) RegisterRegistrarName(fs *flag.FlagSet) {
	fs.StringVar(&f.RegistrarName, "registrar-name", "", "name pattern(s), comma separated, of which a registrar's certificate must match one (e.g. 'reg-*.reg.example'; default: any certificate the CA verifies); needs -tls-cert")
}

// Registrar returns the AuthorizeRegistrar hook of RegistrarName
// (asap.RegistrarNames of its patterns), or nil when it is empty. A
// pattern that is empty or malformed, and -registrar-name without
// -tls-cert (plain SCTP authenticates no registrar), are errors.
func (f Files) Registrar() (asap.RegistrarAuthorizer, error) {
	if f.RegistrarName == "" {
		return nil, nil
	}
	if f.Cert == "" {
		return nil, fmt.Errorf("%w: -registrar-name needs -tls-cert and -tls-key (without DTLS no registrar is authenticated)", ErrConfig)
	}
	var ps []string
	for _, p := range strings.Split(f.RegistrarName, ",") {
		p = strings.TrimSpace(p)
		if err := transport.ValidPattern(p); err != nil {
			return nil, fmt.Errorf("%w: -registrar-name %q: %w", ErrConfig, f.RegistrarName, err)
		}
		ps = append(ps, p)
	}
	return asap.RegistrarNames(ps...), nil
}

// On reports whether any file is named: DTLS is asked for.
func (f Files) On() bool {
	return f.Cert != "" || f.Key != "" || f.CA != "" || f.ServerName != "" || f.SystemRoots
}

// ErrConfig is wrapped by every error of Config and ParseACL.
var ErrConfig = errors.New("invalid DTLS flags")

// Config reads the files and returns the DTLS configuration, or nil
// when no flag is set (plain SCTP). A certificate without its key, a key
// without its certificate, a CA or server name without a certificate, a
// certificate without a CA (unless SystemRoots), a file that does not
// load, and a certificate sctp.Config.Validate refuses (expired, key not
// matching) are errors. onFailure, if not nil, becomes
// DTLSConfig.OnHandshakeFailure.
func (f Files) Config(onFailure func(error)) (*sctp.DTLSConfig, error) {
	if !f.On() {
		return nil, nil
	}
	switch {
	case f.Cert == "" && f.Key == "":
		return nil, fmt.Errorf("%w: -tls-ca, -tls-system-roots and -tls-server-name need -tls-cert and -tls-key (RSerPool associations authenticate both ends)", ErrConfig)
	case f.Cert == "":
		return nil, fmt.Errorf("%w: -tls-key without -tls-cert", ErrConfig)
	case f.Key == "":
		return nil, fmt.Errorf("%w: -tls-cert without -tls-key", ErrConfig)
	case f.CA == "" && !f.SystemRoots:
		return nil, fmt.Errorf("%w: -tls-cert needs -tls-ca, the pool's CA (or -tls-system-roots to trust the host's root CAs)", ErrConfig)
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: -tls-cert %s, -tls-key %s: %w", ErrConfig, f.Cert, f.Key, err)
	}
	d := &sctp.DTLSConfig{Certificates: []tls.Certificate{cert}, ServerName: f.ServerName, OnHandshakeFailure: onFailure, SystemRoots: f.SystemRoots}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("%w: -tls-ca: %w", ErrConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: -tls-ca %s: no PEM certificate in it", ErrConfig, f.CA)
		}
		d.RootCAs = pool // and ClientCAs, by default
	}
	if err := (sctp.Config{DTLS: d}).Validate(); err != nil {
		return nil, fmt.Errorf("%w: -tls-cert %s: %w", ErrConfig, f.Cert, err)
	}
	return d, nil
}

// ParseACL reads rules of the form "pool=pattern" (flag is the flag's
// name, for errors) into a PoolACL: each rule allows the identities
// matching pattern (enrp.MatchIdentity) in the pool; several rules for
// one pool add up. No rules give the zero PoolACL, which allows all.
func ParseACL(flag string, rules []string) (enrp.PoolACL, error) {
	var acl enrp.PoolACL
	for _, r := range rules {
		pool, pattern, ok := strings.Cut(r, "=")
		if !ok || pool == "" || pattern == "" {
			return enrp.PoolACL{}, fmt.Errorf("%w: -%s %q: want pool=pattern, e.g. echo=*.pe.example.org", ErrConfig, flag, r)
		}
		if acl.Pools == nil {
			acl.Pools = map[string][]string{}
		}
		acl.Pools[pool] = append(acl.Pools[pool], pattern)
	}
	if err := acl.Validate(); err != nil {
		return enrp.PoolACL{}, fmt.Errorf("%w: -%s: %w", ErrConfig, flag, err)
	}
	return acl, nil
}
