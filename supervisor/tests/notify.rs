//! The notifier's messages as systemd receives them, on a socket named by `$NOTIFY_SOCKET`.
//! One test only: it sets the process environment, which no other thread may read meanwhile.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use left4me_supervisor::notify::Notifier;

#[test]
fn messages_reach_the_notify_socket() {
    let dir = std::env::temp_dir().join(format!("left4me-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify");
    let server = UnixDatagram::bind(&path).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // SAFETY: the only test of this binary, so no other thread reads the environment.
    unsafe {
        std::env::set_var("NOTIFY_SOCKET", &path);
        std::env::set_var("WATCHDOG_USEC", "30000000");
        std::env::remove_var("WATCHDOG_PID");
    }
    let notifier = Notifier::from_env();
    assert_eq!(notifier.watchdog_interval(), Some(Duration::from_secs(30)));
    notifier.ready("c1m1_hotel, 0/8\nplayers");
    notifier.extend_timeout(Duration::from_secs(2));
    notifier.watchdog();
    notifier.stopping("srcds exited with status 0");
    let mut buf = [0u8; 256];
    let mut next = || {
        let n = server.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(next(), "READY=1\nSTATUS=c1m1_hotel, 0/8 players\n");
    assert_eq!(next(), "EXTEND_TIMEOUT_USEC=2000000\n");
    assert_eq!(next(), "WATCHDOG=1\n");
    assert_eq!(next(), "STOPPING=1\nSTATUS=srcds exited with status 0\n");
    std::fs::remove_dir_all(&dir).unwrap();
}
