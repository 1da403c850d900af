#!/usr/bin/env python3
"""Accuracy of mlforge PCA's randomized mode on a slowly decaying spectrum (the case single-pass
sketches handle badly): SageMaker's single pass (power_iterations=0) against mlforge's power
iterations, for the default and a wider sketch. Reference: float64 numpy eigh of the centred
scatter of the same float32 data. Usage: pca_randomized_accuracy.py MLFORGE_BINARY WORKDIR"""
import os, sys
import numpy as np, subprocess, struct
mlforge, work = os.path.abspath(sys.argv[1]), sys.argv[2]
os.makedirs(work, exist_ok=True)
os.chdir(work)
rng=np.random.default_rng(1)
n,d,k=20000,200,10
r=60
V=np.linalg.qr(rng.normal(size=(d,r)))[0]
sp=10*0.95**np.arange(r)
X=(rng.normal(size=(n,r))*sp)@V.T + 0.5*rng.normal(size=(n,d)) + 3
X=X.astype(np.float32)
np.savetxt('slow.csv',X,delimiter=',',fmt='%.9g')
X=np.loadtxt('slow.csv',delimiter=',',dtype=np.float32).astype(np.float64)
Xc=X-X.mean(0); lam,U=np.linalg.eigh(Xc.T@Xc); ref=np.sqrt(lam[::-1][:k]); Uk=U[:,::-1][:,:k]
def load(p):
    b=open(p,'rb').read(); pos=24; arrs=[]
    cnt=struct.unpack_from('<Q',b,16)[0]
    for i in range(cnt):
        magic,st=struct.unpack_from('<Ii',b,pos); pos+=8
        nd=struct.unpack_from('<i',b,pos)[0]; pos+=4
        shp=struct.unpack_from('<%dq'%nd,b,pos); pos+=8*nd
        pos+=12
        sz=int(np.prod(shp)); a=np.frombuffer(b,dtype=np.float32,count=sz,offset=pos).reshape(shp); pos+=4*sz
        arrs.append(a)
    return arrs
print("n=%d d=%d k=%d spectrum 10*0.95^j (60 dims) + noise 0.5; eigenvalue ratio top/10th = %.2f"%(n,d,k,(ref[0]/ref[-1])**2))
for extra in (-1, 30):
  for p in (0,1,2,3):
    subprocess.run([mlforge,'train','pca','--train','slow.csv','--content-type','train=text/csv;label_size=0','--model-dir','slow_m','--hp','feature_dim=%d'%d,'--hp','num_components=%d'%k,'--hp','algorithm_mode=randomized','--hp','extra_components=%d'%extra,'--hp','power_iterations=%d'%p,'--hp','mini_batch_size=1000'],check=True,capture_output=True)
    s,v,mean=load('slow_m/model_algo-1')
    serr=np.max(np.abs(s-ref)/ref)
    # fraction of the true top-k subspace captured: smallest singular value of Uk^T V
    cap=np.linalg.svd(Uk.T@v.astype(np.float64),compute_uv=False).min()
    # explained variance captured relative to optimal
    ev=np.sum((Xc@v)**2)/np.sum(ref**2)
    print("extra_components=%3d power_iterations=%d: max rel error of s %.2e, min cos of principal angles %.5f, variance captured / optimal %.5f"%(extra,p,serr,cap,ev))
