// The antivirus rule in `relayguard init`: clamd's address from clamd.conf, so the starting policy
// scans with the clamd the host already runs.
import type { RuleMtaPart } from '../../policy/rule-parts.js';
import type { AntivirusConfig } from './schema.js';

export const antivirusMta: RuleMtaPart<AntivirusConfig> = {
  init({ clamd, clamdConf, clamdMissing }) {
    if (!clamd) {
      return [
        `  # antivirus: no clamd found (${clamdMissing ?? clamdConf}). With clamd installed:`,
        '  # antivirus:',
        '  #   mode: monitor',
        '  #   clamd:',
        '  #     address: unix:/run/clamav/clamd.ctl',
      ];
    }
    return [
      '  antivirus:',
      `    # From ${clamdConf}. enforce: infected inbound mail 554 5.7.1, infected outbound mail held`,
      '    # (Postfix hold queue); clamd down: 451 4.3.0 (never delivered unscanned).',
      '    mode: monitor',
      '    clamd:',
      `      address: ${JSON.stringify(clamd.address)}`,
      '      timeout: 30s',
      ...(clamd.streamMaxLength
        ? [
            "      # clamd's StreamMaxLength: larger messages are not sent to it.",
            `      max_size: ${JSON.stringify(clamd.streamMaxLength)}`,
          ]
        : []),
      '    actions:',
      '      inbound: reject',
      '      outbound: quarantine',
      '    on_failure:',
      '      inbound: tempfail',
      '      outbound: tempfail',
    ];
  },
};
