//! `provision`: stands up the bucket, policy, certificates, CDN and CNAME around the Worker.

fn main() {
    println!("provision: not yet implemented");
}
