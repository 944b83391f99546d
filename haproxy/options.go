package haproxy

import "strings"

// keyword describes one `server` / `default-server` option of HAProxy
// 2.6: how many arguments it takes, and whether `add server` accepts it.
type keyword struct {
	args    int
	dynamic bool // accepted by `add server` in 2.6.12
}

// serverKeywords lists the server options of HAProxy 2.6 (configuration
// manual 5.2). dynamic was measured against haproxy 2.6.12: every keyword
// was tried on `add server` (the management manual's list misses
// no-backup, no-send-proxy*, no-tfo). A few newer keywords are listed so
// that their arguments are recognised; 2.6 does not know them.
var serverKeywords = map[string]keyword{
	"addr":                    {1, true},
	"agent-addr":              {1, true},
	"agent-check":             {0, true},
	"agent-inter":             {1, true},
	"agent-port":              {1, true},
	"agent-send":              {1, true},
	"allow-0rtt":              {0, true},
	"alpn":                    {1, true},
	"backup":                  {0, true},
	"ca-file":                 {1, true},
	"check":                   {0, true},
	"check-alpn":              {1, true},
	"check-proto":             {1, true},
	"check-send-proxy":        {0, true},
	"check-sni":               {1, true},
	"check-ssl":               {0, true},
	"check-via-socks4":        {0, true},
	"ciphers":                 {1, true},
	"ciphersuites":            {1, true},
	"cookie":                  {1, false},
	"crl-file":                {1, true},
	"crt":                     {1, true},
	"disabled":                {0, true},
	"downinter":               {1, true},
	"enabled":                 {0, true},
	"error-limit":             {1, true},
	"fall":                    {1, true},
	"fastinter":               {1, true},
	"force-sslv3":             {0, true},
	"force-tlsv10":            {0, true},
	"force-tlsv11":            {0, true},
	"force-tlsv12":            {0, true},
	"force-tlsv13":            {0, true},
	"id":                      {1, true},
	"init-addr":               {1, false},
	"inter":                   {1, true},
	"log-proto":               {1, false},
	"max-reuse":               {1, false},
	"maxconn":                 {1, true},
	"maxqueue":                {1, true},
	"minconn":                 {1, true},
	"namespace":               {1, false},
	"no-agent-check":          {0, false},
	"no-backup":               {0, true},
	"no-check":                {0, false},
	"no-check-ssl":            {0, false},
	"no-send-proxy":           {0, true},
	"no-send-proxy-v2":        {0, true},
	"no-send-proxy-v2-ssl":    {0, true},
	"no-send-proxy-v2-ssl-cn": {0, true},
	"no-ssl":                  {0, false},
	"no-ssl-reuse":            {0, true},
	"no-sslv3":                {0, true},
	"no-tfo":                  {0, true},
	"no-tls-tickets":          {0, true},
	"no-tlsv10":               {0, true},
	"no-tlsv11":               {0, true},
	"no-tlsv12":               {0, true},
	"no-tlsv13":               {0, true},
	"no-verifyhost":           {0, false},
	"non-stick":               {0, false},
	"npn":                     {1, true},
	"observe":                 {1, true},
	"on-error":                {1, true},
	"on-marked-down":          {1, true},
	"on-marked-up":            {1, true},
	"pool-low-conn":           {1, true},
	"pool-max-conn":           {1, true},
	"pool-purge-delay":        {1, true},
	"port":                    {1, true},
	"proto":                   {1, true},
	"proxy-v2-options":        {1, true},
	"redir":                   {1, false},
	"resolve-net":             {1, false},
	"resolve-opts":            {1, false},
	"resolve-prefer":          {1, false},
	"resolvers":               {1, false},
	"rise":                    {1, true},
	"send-proxy":              {0, true},
	"send-proxy-v2":           {0, true},
	"send-proxy-v2-ssl":       {0, true},
	"send-proxy-v2-ssl-cn":    {0, true},
	"slowstart":               {1, true},
	"sni":                     {1, true},
	"socks4":                  {1, false},
	"source":                  {1, true}, // plus optional "usesrc X" and "interface X"
	"ssl":                     {0, true},
	"ssl-max-ver":             {1, true},
	"ssl-min-ver":             {1, true},
	"ssl-reuse":               {0, false},
	"stick":                   {0, false},
	"tcp-ut":                  {1, false},
	"tfo":                     {0, true},
	"tls-tickets":             {0, true},
	"track":                   {1, true},
	"verify":                  {1, true},
	"verifyhost":              {1, true},
	"weight":                  {1, true},
	"ws":                      {1, true},
	// Newer than 2.6: known here only to take their argument along.
	"client-sigalgs": {1, false},
	"curves":         {1, false},
	"hash-key":       {1, false},
	"shard":          {1, false},
	"sigalgs":        {1, false},
}

// cancels maps the options whose only effect is to cancel an earlier one
// (normally inherited from default-server) to the options they cancel.
// Merging resolves them, so that `add server`, which refuses most of them,
// receives the result instead.
var cancels = map[string]string{
	"no-agent-check":          "agent-check",
	"no-backup":               "backup",
	"no-check":                "check",
	"no-check-ssl":            "check-ssl",
	"no-send-proxy":           "send-proxy",
	"no-send-proxy-v2":        "send-proxy-v2",
	"no-send-proxy-v2-ssl":    "send-proxy-v2-ssl",
	"no-send-proxy-v2-ssl-cn": "send-proxy-v2-ssl-cn",
	"no-ssl":                  "ssl",
	"no-tfo":                  "tfo",
	"no-verifyhost":           "verifyhost",
	"non-stick":               "stick",
	"ssl-reuse":               "no-ssl-reuse",
	"tls-tickets":             "no-tls-tickets",
}

// resolutionOnly are options that only matter when the address is a name
// to resolve. For an IP address they change nothing, so an added server
// with an IP address can go without them (add server refuses them).
var resolutionOnly = map[string]bool{
	"init-addr":      true,
	"resolvers":      true,
	"resolve-net":    true,
	"resolve-opts":   true,
	"resolve-prefer": true,
}

// splitOptions groups the words after `server NAME ADDR` (or after
// `default-server`) into options: a keyword with its arguments, joined by
// one space. An unknown keyword takes the following words up to the next
// known keyword.
func splitOptions(words []string) []string {
	var opts []string
	for i := 0; i < len(words); {
		k, known := serverKeywords[words[i]]
		j := i + 1
		switch {
		case !known:
			for j < len(words) {
				if _, ok := serverKeywords[words[j]]; ok {
					break
				}
				j++
			}
		case words[i] == "source":
			j = min(j+1, len(words))
			for j+1 < len(words) && (words[j] == "usesrc" || words[j] == "interface") {
				j += 2
			}
		default:
			j = min(j+k.args, len(words))
		}
		opts = append(opts, strings.Join(words[i:j], " "))
		i = j
	}
	return opts
}

// optionKeyword returns the keyword of an option built by splitOptions.
func optionKeyword(opt string) string {
	k, _, _ := strings.Cut(opt, " ")
	return k
}

// mergeOptions returns what a server line ends up with: the
// default-server options, then the line's own, with cancelling options
// applied and, for an IP address, the resolution-only options dropped.
func mergeOptions(defaults, own []string, ipAddr bool) []string {
	var out []string
	for _, opt := range append(append([]string(nil), defaults...), own...) {
		k := optionKeyword(opt)
		if ipAddr && resolutionOnly[k] {
			continue
		}
		if target, ok := cancels[k]; ok {
			kept := out[:0]
			for _, o := range out {
				if optionKeyword(o) != target {
					kept = append(kept, o)
				}
			}
			out = kept
			continue
		}
		out = append(out, opt)
	}
	return out
}

// hasOption reports whether opts holds an option with keyword k.
func hasOption(opts []string, k string) bool {
	for _, o := range opts {
		if optionKeyword(o) == k {
			return true
		}
	}
	return false
}
