package bidi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// deadURL is where every background service that insists on a URL is sent:
// a loopback port nothing listens on (and that Firefox refuses to connect
// to anyway: 9 is on its list of banned ports).
const deadURL = "http://127.0.0.1:9/"

// quietPrefs keep a test profile off the network and free of first-run
// noise. The machines this runs on have no route out and outside traffic is
// flagged, so every service that phones home is switched off, and where a
// switch alone is not trusted its URL points at deadURL too. The list was
// made by reading what Firefox's remote agent, geckodriver and Puppeteer
// set for automation, then adding what they leave on.
var quietPrefs = map[string]any{
	// Application and add-on updates.
	"app.update.disabledForTesting":                      true,
	"app.update.auto":                                    false,
	"app.update.checkInstallTime":                        false,
	"app.update.service.enabled":                         false,
	"app.update.staging.enabled":                         false,
	"app.update.url":                                     deadURL,
	"extensions.update.enabled":                          false,
	"extensions.update.autoUpdateDefault":                false,
	"extensions.update.notifyUser":                       false,
	"extensions.update.url":                              deadURL,
	"extensions.update.background.url":                   deadURL,
	"extensions.systemAddon.update.enabled":              false,
	"extensions.systemAddon.update.url":                  deadURL,
	"extensions.getAddons.cache.enabled":                 false,
	"extensions.getAddons.get.url":                       deadURL,
	"extensions.getAddons.search.browseURL":              deadURL,
	"extensions.getAddons.discovery.api_url":             deadURL,
	"extensions.htmlaboutaddons.recommendations.enabled": false,
	"extensions.blocklist.enabled":                       false,
	"extensions.installDistroAddons":                     false,
	"extensions.autoDisableScopes":                       0,
	"extensions.enabledScopes":                           5, // profile and application only, no system-wide add-ons
	"media.gmp-manager.updateEnabled":                    false,
	"media.gmp-manager.url":                              deadURL,
	"media.gmp-gmpopenh264.enabled":                      false,
	"media.gmp-widevinecdm.enabled":                      false,
	"media.eme.enabled":                                  false,
	"browser.search.update":                              false,
	"general.useragent.updates.enabled":                  false,

	// Telemetry, data reporting, studies, experiments, crash reports.
	"datareporting.healthreport.uploadEnabled":                    false,
	"datareporting.healthreport.service.enabled":                  false,
	"datareporting.healthreport.documentServerURI":                deadURL,
	"datareporting.policy.dataSubmissionEnabled":                  false,
	"datareporting.policy.dataSubmissionPolicyBypassNotification": true,
	"datareporting.usage.uploadEnabled":                           false,
	"toolkit.telemetry.enabled":                                   false,
	"toolkit.telemetry.unified":                                   false,
	"toolkit.telemetry.archive.enabled":                           false,
	"toolkit.telemetry.server":                                    deadURL,
	"toolkit.telemetry.reportingpolicy.firstRun":                  false,
	"toolkit.telemetry.shutdownPingSender.enabled":                false,
	"toolkit.telemetry.newProfilePing.enabled":                    false,
	"toolkit.telemetry.firstShutdownPing.enabled":                 false,
	"toolkit.telemetry.updatePing.enabled":                        false,
	"toolkit.telemetry.bhrPing.enabled":                           false,
	"toolkit.coverage.opt-out":                                    true,
	"toolkit.coverage.endpoint.base":                              deadURL,
	"app.normandy.enabled":                                        false,
	"app.normandy.api_url":                                        "",
	"nimbus.rollouts.enabled":                                     false,
	"app.shield.optoutstudies.enabled":                            false,
	"browser.discovery.enabled":                                   false,
	"browser.newtabpage.activity-stream.telemetry":                false,
	"breakpad.reportURL":                                          deadURL,
	"browser.tabs.crashReporting.sendReport":                      false,
	"browser.crashReports.unsubmittedCheck.autoSubmit2":           false,

	// Remote settings, certificate revocation and blocklist downloads.
	"services.settings.server":                         deadURL,
	"security.remote_settings.crlite_filters.enabled":  false,
	"security.remote_settings.intermediates.enabled":   false,
	"security.certerrors.mitm.priming.enabled":         false,
	"security.OCSP.enabled":                            0,
	"browser.safebrowsing.malware.enabled":             false,
	"browser.safebrowsing.phishing.enabled":            false,
	"browser.safebrowsing.downloads.enabled":           false,
	"browser.safebrowsing.downloads.remote.enabled":    false,
	"browser.safebrowsing.downloads.remote.url":        deadURL,
	"browser.safebrowsing.blockedURIs.enabled":         false,
	"browser.safebrowsing.update.enabled":              false,
	"browser.safebrowsing.provider.google.updateURL":   deadURL,
	"browser.safebrowsing.provider.google.gethashURL":  deadURL,
	"browser.safebrowsing.provider.google4.updateURL":  deadURL,
	"browser.safebrowsing.provider.google4.gethashURL": deadURL,
	"browser.safebrowsing.provider.mozilla.updateURL":  deadURL,
	"browser.safebrowsing.provider.mozilla.gethashURL": deadURL,
	"privacy.trackingprotection.enabled":               false,

	// Connectivity probes, DNS and speculative connections, push, time.
	"network.captive-portal-service.enabled":           false,
	"captivedetect.canonicalURL":                       deadURL,
	"network.connectivity-service.enabled":             false,
	"network.trr.mode":                                 5, // DNS over HTTPS off by choice
	"doh-rollout.disable-heuristics":                   true,
	"network.dns.disablePrefetch":                      true,
	"network.dns.disablePrefetchFromHTTPS":             true,
	"network.prefetch-next":                            false,
	"network.http.speculative-parallel-limit":          0,
	"browser.urlbar.speculativeConnect.enabled":        false,
	"browser.places.speculativeConnect.enabled":        false,
	"network.proxy.type":                               0, // direct: never an environment proxy
	"network.manage-offline-status":                    false,
	"network.sntp.pools":                               "127.0.0.1",
	"dom.push.enabled":                                 false,
	"dom.push.connection.enabled":                      false,
	"dom.push.serverURL":                               deadURL,
	"geo.enabled":                                      false,
	"geo.provider.network.url":                         deadURL,
	"geo.wifi.scan":                                    false,
	"browser.region.network.url":                       deadURL,
	"browser.region.update.enabled":                    false,
	"browser.search.suggest.enabled":                   false,
	"browser.urlbar.suggest.searches":                  false,
	"browser.urlbar.quicksuggest.enabled":              false,
	"browser.urlbar.suggest.quicksuggest.sponsored":    false,
	"browser.urlbar.suggest.quicksuggest.nonsponsored": false,
	"browser.urlbar.merino.endpointURL":                "",
	"identity.fxaccounts.enabled":                      false,
	"browser.translations.enable":                      false,
	"browser.translations.automaticallyPopup":          false,
	"browser.ml.enable":                                false,

	// First run, home and new-tab pages.
	"browser.startup.page":                                               0,
	"browser.startup.homepage":                                           "about:blank",
	"browser.startup.homepage_override.mstone":                           "ignore",
	"startup.homepage_welcome_url":                                       "about:blank",
	"startup.homepage_welcome_url.additional":                            "",
	"startup.homepage_override_url":                                      "",
	"browser.aboutwelcome.enabled":                                       false,
	"browser.newtabpage.enabled":                                         false,
	"browser.newtabpage.activity-stream.feeds.section.topstories":        false,
	"browser.newtabpage.activity-stream.feeds.system.topstories":         false,
	"browser.newtabpage.activity-stream.feeds.topsites":                  false,
	"browser.newtabpage.activity-stream.showSponsored":                   false,
	"browser.newtabpage.activity-stream.showSponsoredTopSites":           false,
	"browser.newtabpage.activity-stream.default.sites":                   "",
	"browser.newtabpage.activity-stream.asrouter.userprefs.cfr.addons":   false,
	"browser.newtabpage.activity-stream.asrouter.userprefs.cfr.features": false,
	"browser.topsites.contile.enabled":                                   false,
	"browser.pagethumbnails.capturing_disabled":                          true,
	"browser.shell.checkDefaultBrowser":                                  false,
	"browser.uitour.enabled":                                             false,

	// Behaviour under automation: no dialogs, no crash recovery, and
	// pages in tabs that are not in front keep running at full speed.
	"browser.sessionstore.resume_from_crash":     false,
	"toolkit.startup.max_resumed_crashes":        -1,
	"browser.warnOnQuit":                         false,
	"browser.tabs.warnOnClose":                   false,
	"dom.ipc.reportProcessHangs":                 false,
	"signon.rememberSignons":                     false,
	"signon.autofillForms":                       false,
	"focusmanager.testmode":                      true,
	"dom.min_background_timeout_value":           4,
	"dom.timeout.enable_budget_timer_throttling": false,
}

// writeUserJS writes the profile's user.js: quietPrefs, then WebAssembly
// off if asked, then extra (which win).
func writeUserJS(profile string, disableWasm bool, extra map[string]any) error {
	prefs := make(map[string]any, len(quietPrefs)+len(extra)+1)
	maps.Copy(prefs, quietPrefs)
	if disableWasm {
		prefs["javascript.options.wasm"] = false
	}
	maps.Copy(prefs, extra)
	var buf bytes.Buffer
	buf.WriteString("// Written by onionchat's internal/testing/bidi for one test run.\n")
	for _, k := range slices.Sorted(maps.Keys(prefs)) {
		line, err := prefLine(k, prefs[k])
		if err != nil {
			return err
		}
		buf.WriteString(line)
	}
	return os.WriteFile(filepath.Join(profile, "user.js"), buf.Bytes(), 0o600)
}

// prefLine renders one user_pref line. Firefox has boolean, integer and
// string preferences only.
func prefLine(name string, v any) (string, error) {
	var lit string
	switch x := v.(type) {
	case bool:
		lit = fmt.Sprint(x)
	case int, int8, int16, int32, int64, uint8, uint16, uint32:
		lit = fmt.Sprint(x)
	case string:
		lit = jsString(x)
	default:
		return "", fmt.Errorf("bidi: preference %q: unsupported type %T (want bool, integer or string)", name, v)
	}
	return fmt.Sprintf("user_pref(%s, %s);\n", jsString(name), lit), nil
}

// jsString quotes s as a JSON string, which Firefox's preference parser
// reads: its escapes are a subset of what the parser accepts.
func jsString(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}
