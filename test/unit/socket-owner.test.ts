// The chroot-ready socket's ownership: group lookup, the directory created 2750 set-gid for the
// socket group, the socket's group and mode, and a refusal to chgrp reported (not thrown).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { groupId, prepareSocketDir, setSocketOwner, socketGroup } from '../../src/session/socket-owner.js';

const dir = mkdtempSync(join(tmpdir(), 'rg-sockown-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const root = process.getuid?.() === 0;

describe('socket ownership', () => {
  it('looks groups up in the group file; a configured group that does not exist is an error', () => {
    const file = join(dir, 'group');
    writeFileSync(file, 'root:x:0:\npostfix:x:106:\nbad:x:notanumber:\n');
    assert.equal(groupId('postfix', file), 106);
    assert.equal(groupId('bad', join(dir, 'none')), null); // neither the file nor NSS knows it
    assert.throws(() => socketGroup('no-such-group-here'), /server\.socket_group: no group "no-such-group-here"/);
    assert.deepEqual(socketGroup('0'), { gid: 0, name: '0' });
  });

  it(
    'creates the directory 2750 for the group and gives the socket that group and its mode',
    { skip: root ? false : 'needs root to chgrp' },
    () => {
      const gid = groupId('nogroup') ?? 65534;
      const sock = join(dir, 'jail', 'relayguard', 'milter.sock');
      assert.deepEqual(prepareSocketDir(sock, gid), { created: true, warning: null });
      const st = statSync(join(dir, 'jail', 'relayguard'));
      assert.equal(st.gid, gid);
      assert.equal(st.mode & 0o7777, 0o2750);
      assert.deepEqual(prepareSocketDir(sock, gid), { created: false, warning: null }); // an existing directory is left alone
      writeFileSync(sock, ''); // stands in for the socket: ownership works the same
      chmodSync(sock, 0o644);
      assert.equal(setSocketOwner(sock, 0o660, gid), null);
      assert.equal(statSync(sock).gid, gid); // inherited from the set-gid directory, or chgrp'ed
      assert.equal(statSync(sock).mode & 0o777, 0o660);
    },
  );

  it(
    'a user who may not give the file that group gets a warning, not a crash',
    { skip: root ? false : 'needs root to switch user' },
    () => {
      const file = join(dir, 'plain');
      writeFileSync(file, '');
      chmodSync(dir, 0o777);
      execFileSync('chown', ['nobody', file]);
      const script = `import(${JSON.stringify(new URL('../../src/session/socket-owner.js', import.meta.url).pathname)}).then((m) => process.stdout.write(String(m.setSocketOwner(${JSON.stringify(file)}, 0o660, 1))))`; // gid 1 (daemon): nobody is not in it
      const out = execFileSync(
        'setpriv',
        ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, '-e', script],
        { encoding: 'utf8' },
      );
      assert.match(out, /cannot give .*plain group 1 \(EPERM: relayguard is neither root nor in that group\)/);
      assert.equal(statSync(file).mode & 0o777, 0o660);
    },
  );
});
