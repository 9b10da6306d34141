# Regenerate sim/figures/dht_scaling.svg from the measured points:
#   python3 sim/figures/dht_scaling.py sim/figures/dht_scaling.json sim/figures/dht_scaling.svg
import math, sys, json
pts = json.load(open(sys.argv[1]))  # [{"name","n","p50","p99","success"}]
W,H=640,360; x0,x1,y0,y1=60,580,310,30
def X(l2): return x0+(l2-5.5)*(x1-x0)/8.5
def Yh(h): return y0-h*28
def Ys(s): return y0-(s-90)*28
o=[]
o.append(f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">')
o.append(f'<rect width="{W}" height="{H}" fill="white"/>')
o.append(f'<text x="320.0" y="16" text-anchor="middle" font-size="13">Peersm DHT on the simulator: FIND_NODE hops and success vs log2(N)</text>')
o.append(f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="black"/>')
o.append(f'<line x1="{x0}" y1="{y1}" x2="{x0}" y2="{y0}" stroke="black"/>')
o.append(f'<line x1="{x1}" y1="{y1}" x2="{x1}" y2="{y0}" stroke="black"/>')
for l in range(6,15): o.append(f'<text x="{X(l)}" y="325" text-anchor="middle">{l}</text>')
for h in range(0,11,2): o.append(f'<text x="54" y="{Yh(h)+4}" text-anchor="end">{h}</text>')
for s in range(90,101,2): o.append(f'<text x="586" y="{Ys(s)+4}">{s}%</text>')
o.append('<text x="320.0" y="348" text-anchor="middle">log2(N)  (N = peers)</text>')
o.append('<text x="14" y="180.0" transform="rotate(-90 14 180.0)" text-anchor="middle">hops</text>')
o.append('<text x="630" y="180.0" transform="rotate(90 630 180.0)" text-anchor="middle">FIND_NODE success</text>')
o.append(f'<polyline fill="none" stroke="#999" stroke-dasharray="4 3" points="{X(5.5)},{Yh(5.5/2)} {X(14)},{Yh(7)}"/>')
o.append(f'<text x="{X(13.2)}" y="{Yh(6.6)+4}" fill="#777" text-anchor="end">goal: p50 hops ≤ log2(N)/2</text>')
o.append(f'<polyline fill="none" stroke="#2a7" stroke-dasharray="2 2" points="{x0},{Ys(99.9)} {x1},{Ys(99.9)}"/>')
def series(key, color, Y, label, ly):
    ps=[p for p in pts if not p.get("churn")]
    o.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'+" ".join(f"{X(math.log2(p['n']))},{Y(p[key])}" for p in ps)+'"/>')
    for p in pts:
        fill = color if not p.get("churn") else "white"
        o.append(f'<circle cx="{X(math.log2(p["n"]))}" cy="{Y(p[key])}" r="3.5" fill="{fill}" stroke="{color}"/>')
    o.append(f'<text x="70" y="{ly}" fill="{color}">{label}</text>')
series("p50","#36c",Yh,"hops p50",44)
series("p99","#c63",Yh,"hops p99",58)
series("success","#2a7",Ys,"success (right axis; 99.9% dashed)",72)
o.append('<text x="70" y="86" fill="#555">filled: no churn (joined by a line); open: 30%/h churn</text>')
for p in pts:
    dy = -8 if not p.get("churn") else 16
    o.append(f'<text x="{X(math.log2(p["n"]))}" y="{Yh(p["p99"])+dy}" text-anchor="middle" fill="#555">{p["name"]}</text>')
o.append('</svg>')
open(sys.argv[2],'w').write("\n".join(o)+"\n")
