//! `file read`, `file write`, `file offsets`: the bytes read(), readv(), write(), writev(),
//! pread() and pwrite() move are the mapping's and /dev/mem's.

use std::io::{IoSlice, IoSliceMut};

use carveout::{abi, pattern, Access, Region};
use rustix::{
    fs::{seek, SeekFrom},
    io::{pread, pwrite, read, readv, write, writev},
};

use super::{devmem_holds, position, same, sys, via_devmem, PAGE};
use crate::{fail, Failed};

pub fn check_read(region: &Region, info: &abi::Info, seed: u64) -> Result<(), Failed> {
    let size = info.size as usize;
    let mapping = region
        .map(0..info.size, Access::ReadWrite)
        .map_err(|e| fail(e.to_string()))?;
    mapping.fill_pattern(seed, |_| ());
    let mut from_map = vec![0u8; size];
    mapping.copy_to_slice(0, &mut from_map);
    same(
        "the mapping after the fill",
        0,
        &from_map,
        &pattern::bytes(seed, 0, size),
    )?;

    // read() from the start in odd lengths, to the end of file.
    sys("lseek(0)", seek(region, SeekFrom::Start(0)))?;
    let mut got = vec![0u8; size + 3];
    let mut done = 0;
    let mut calls = 0;
    while done < got.len() {
        let want = ((1 << 20) + 7).min(got.len() - done);
        let n = sys("read()", read(region, &mut got[done..done + want]))?;
        if n == 0 {
            break;
        }
        done += n;
        calls += 1;
    }
    if done != size {
        return Err(fail(format!(
            "read() gave {done} bytes before EOF, the region is {size}"
        )));
    }
    same("read() against the mapping", 0, &got[..size], &from_map)?;
    println!("# read(): {size} bytes in {calls} calls match the mapping");

    // readv() from an odd offset into three vectors.
    let at = 3 * PAGE + 5;
    sys("lseek", seek(region, SeekFrom::Start(at)))?;
    let (mut a, mut b, mut c) = (vec![0u8; 4093], vec![0u8; 1], vec![0u8; (2 << 20) + 11]);
    let total = a.len() + b.len() + c.len();
    let n = sys(
        "readv()",
        readv(
            region,
            &mut [
                IoSliceMut::new(&mut a),
                IoSliceMut::new(&mut b),
                IoSliceMut::new(&mut c),
            ],
        ),
    )?;
    if n != total {
        return Err(fail(format!("readv() gave {n} bytes, expected {total}")));
    }
    let joined = [a, b, c].concat();
    let end = at as usize + total;
    same(
        "readv() against the mapping",
        at,
        &joined,
        &from_map[at as usize..end],
    )?;
    if position(region)? != end as u64 {
        return Err(fail("readv() did not advance the position by its count"));
    }
    // And against /dev/mem, outside the driver.
    same(
        "readv() against /dev/mem",
        at,
        &joined,
        &via_devmem(info, at, total)?,
    )?;
    println!("# readv(): {total} bytes at {at:#x} in three vectors match the mapping and /dev/mem");
    // Reading and seeking changed nothing.
    devmem_holds(info, seed, "/dev/mem after the reads", "differ")?;
    Ok(())
}

pub fn check_write(region: &Region, info: &abi::Info, seed: u64) -> Result<(), Failed> {
    let size = info.size as usize;
    let want = pattern::bytes(seed, 0, size);
    sys("lseek(0)", seek(region, SeekFrom::Start(0)))?;
    // The first 3 MiB + 5 bytes with writev() in three vectors, the rest with write() in odd
    // lengths.
    let split = [4099usize, (3 << 20) - 4099, 5];
    let mut parts = Vec::new();
    let mut at = 0;
    for len in split {
        parts.push(IoSlice::new(&want[at..at + len]));
        at += len;
    }
    let n = sys("writev()", writev(region, &parts))?;
    if n != at {
        return Err(fail(format!("writev() wrote {n} bytes, expected {at}")));
    }
    let mut done = at;
    while done < size {
        let len = ((1 << 20) + 13).min(size - done);
        let n = sys("write()", write(region, &want[done..done + len]))?;
        if n == 0 {
            return Err(fail(format!("write() wrote nothing at {done:#x}")));
        }
        done += n;
    }
    if position(region)? != info.size {
        return Err(fail(
            "the position after writing the whole region is not its size",
        ));
    }
    let mapping = region
        .map(0..info.size, Access::Read)
        .map_err(|e| fail(e.to_string()))?;
    mapping.verify_pattern(seed, |_| ()).map_err(|m| {
        fail(format!(
            "the mapping: {} words differ from {:#x}",
            m.words, m.offset
        ))
    })?;
    devmem_holds(info, seed, "/dev/mem", "differ")?;
    println!("# writev() and write(): {size} bytes seen in the mapping and through /dev/mem");
    Ok(())
}

pub fn check_offsets(region: &Region, info: &abi::Info) -> Result<(), Failed> {
    let size = info.size;
    let mapping = region
        .map(0..size, Access::ReadWrite)
        .map_err(|e| fail(e.to_string()))?;
    sys("lseek", seek(region, SeekFrom::Start(12345)))?;
    let offsets = [
        0,
        1,
        PAGE - 3,
        2 << 20,
        (2 << 20) - 1,
        size / 2 + 17,
        size - 9,
        size - 1,
    ];
    for (i, &at) in offsets.iter().enumerate() {
        let len = 9.min((size - at) as usize);
        let bytes: Vec<u8> = (0..len).map(|j| (0xa0 + i * 9 + j) as u8).collect();
        let n = sys("pwrite()", pwrite(region, &bytes, at))?;
        if n != len {
            return Err(fail(format!("pwrite() at {at:#x} wrote {n} of {len}")));
        }
        let mut seen = vec![0u8; len];
        mapping.copy_to_slice(at as usize, &mut seen);
        same("pwrite() seen in the mapping", at, &seen, &bytes)?;
        same(
            "pwrite() seen through /dev/mem",
            at,
            &via_devmem(info, at, len)?,
            &bytes,
        )?;
        // Written through the mapping, read with pread().
        let other: Vec<u8> = bytes.iter().map(|b| !b).collect();
        mapping.copy_from_slice(at as usize, &other);
        let mut back = vec![0u8; len];
        let n = sys("pread()", pread(region, &mut back, at))?;
        same("pread() of what the mapping wrote", at, &back[..n], &other)?;
    }
    if position(region)? != 12345 {
        return Err(fail("pread()/pwrite() moved the file position"));
    }
    println!(
        "# pread()/pwrite() at {} offsets agree with the mapping and /dev/mem",
        offsets.len()
    );
    Ok(())
}
